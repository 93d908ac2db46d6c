#include "controller/fleet/expand.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "controller/fleet/discovery.h"

namespace synq::controller::fleet {

std::string MemberName(const std::string& group, size_t index) {
  return absl::StrCat(group, "-", index + 1);
}

std::string MemberKey(const std::string& item, const std::string& member) {
  return absl::StrCat(item, "@", member);
}

absl::StatusOr<Expansion> ExpandGroups(const Scenario& scenario, const GroupMembers& members) {
  Expansion out;
  out.scenario = scenario;
  Scenario& s = out.scenario;
  GroupPlan& plan = out.plan;
  // Group name -> its member host names.
  std::map<std::string, std::vector<std::string>> names;
  s.hosts.clear();
  for (const HostSpec& h : scenario.hosts) {
    if (!h.is_group()) {
      s.hosts.push_back(h);
      continue;
    }
    auto it = members.find(h.name);
    if (it == members.end() || it->second.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("hosts.", h.name, ": no members"));
    }
    std::vector<std::string> endpoints = it->second;
    SortEndpoints(endpoints);
    for (size_t i = 0; i < endpoints.size(); ++i) {
      HostSpec m = h;
      m.group.reset();
      m.name = MemberName(h.name, i);
      m.agent = endpoints[i];
      names[h.name].push_back(m.name);
      plan.hosts[m.name] = {h.name, endpoints[i]};
      s.hosts.push_back(std::move(m));
    }
  }
  if (names.empty()) return out;
  s.sweep.clear();  // its targets index the unexpanded items; sweeps are applied before this
  if (scenario.search) {
    return absl::InvalidArgumentError(
        "search: a knee search over host groups is not supported yet; name single hosts");
  }
  auto group_of = [&names](const std::string& host) -> const std::vector<std::string>* {
    auto it = names.find(host);
    return it == names.end() ? nullptr : &it->second;
  };

  s.settings.clear();
  for (const auto& [host, keys] : scenario.settings) {
    if (const auto* m = group_of(host)) {
      for (const std::string& member : *m) s.settings[member] = keys;
    } else {
      s.settings[host] = keys;
    }
  }
  auto hosts_of = [&group_of](const std::string& host) {
    const auto* m = group_of(host);
    return m == nullptr ? std::vector<std::string>{host} : *m;
  };
  s.shaping.clear();
  for (const ShapingDef& d : scenario.shaping) {
    for (const std::string& from : hosts_of(d.host)) {
      if (d.to.empty()) {
        ShapingDef copy = d;
        copy.host = from;
        s.shaping.push_back(std::move(copy));
        continue;
      }
      for (const std::string& to : hosts_of(d.to)) {
        ShapingDef copy = d;
        copy.host = from;
        copy.to = to;
        s.shaping.push_back(std::move(copy));
      }
    }
  }
  s.captures.clear();
  for (const CaptureDef& c : scenario.captures) {
    for (const std::string& h : hosts_of(c.host)) s.captures.push_back({h});
  }
  // Listener or observe name on a group -> the group.
  std::map<std::string, std::string> grouped_targets;
  // Listeners and observed listeners on a group: one row per member, merged under the name.
  const auto expand_listeners = [&](const auto& defs, auto* out) {
    out->clear();
    for (const auto& l : defs) {
      const auto* m = group_of(l.host);
      if (m == nullptr) {
        out->push_back(l);
        continue;
      }
      grouped_targets[l.name] = l.host;
      plan.row_group["listeners." + l.name] = l.host;
      for (const std::string& member : *m) {
        auto copy = l;
        copy.name = MemberKey(l.name, member);
        copy.host = member;
        plan.listeners[l.name].push_back(copy.name);
        out->push_back(std::move(copy));
      }
    }
  };
  expand_listeners(scenario.listeners, &s.listeners);
  expand_listeners(scenario.observes, &s.observes);
  s.floods.clear();
  for (const FloodDef& f : scenario.floods) {
    const auto* on = group_of(f.host);
    auto target = grouped_targets.find(f.target);
    if (on != nullptr && target != grouped_targets.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("floods.", f.name, ".target: a flood on a group (hosts.", f.host,
                       ") cannot target a listener on a group (hosts.", target->second, ")"));
    }
    if (on != nullptr) {
      plan.row_group["floods." + f.name] = f.host;
      for (const std::string& member : *on) {
        FloodDef copy = f;
        copy.name = MemberKey(f.name, member);
        copy.host = member;
        plan.floods[f.name].push_back(copy.name);
        s.floods.push_back(std::move(copy));
      }
      continue;
    }
    if (target != grouped_targets.end()) {
      // One flood per member of the target group, each to that member's listener.
      plan.row_group["floods." + f.name] = target->second;
      for (const std::string& member : names[target->second]) {
        FloodDef copy = f;
        copy.name = MemberKey(f.name, member);
        copy.target = MemberKey(f.target, member);
        plan.floods[f.name].push_back(copy.name);
        s.floods.push_back(std::move(copy));
      }
      continue;
    }
    s.floods.push_back(f);
  }
  return out;
}

}  // namespace synq::controller::fleet
