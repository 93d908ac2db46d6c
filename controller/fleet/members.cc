#include "controller/fleet/members.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/labels.h"
#include "controller/fleet/discovery.h"

namespace synq::controller::fleet {
namespace {

std::string FieldOf(const HostSpec& host) {
  return absl::StrCat("hosts.", host.name, host.group->discover ? ".discover" : ".agents");
}

}  // namespace

std::vector<MemberProbe> ProbeAgents(const std::vector<std::string>& endpoints,
                                     const AgentSecurity& security,
                                     std::chrono::nanoseconds connect_timeout,
                                     std::map<std::string, ConnectedAgent>* connected_out) {
  // The controller's one fan-out: every endpoint at once on gRPC's callback API.
  std::vector<AgentTarget> targets;
  targets.reserve(endpoints.size());
  for (const std::string& e : endpoints) targets.push_back({e, security});
  std::vector<absl::StatusOr<ConnectedAgent>> connected = ConnectAgents(targets, connect_timeout);
  std::vector<MemberProbe> out;
  out.reserve(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (connected[i].ok()) {
      out.push_back({endpoints[i], connected[i]->info});
      if (connected_out != nullptr) (*connected_out)[endpoints[i]] = *std::move(connected[i]);
    } else {
      out.push_back({endpoints[i], connected[i].status()});
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ChooseMembers(const HostSpec& host,
                                                       const std::vector<std::string>& found,
                                                       const std::vector<MemberProbe>& probes) {
  const HostGroup& group = *host.group;
  std::vector<std::string> selected;
  size_t answered = 0;
  std::vector<std::string> silent;
  std::vector<std::string> unselected;  // answered, labels do not match select:
  for (const MemberProbe& p : probes) {
    if (!p.info.ok()) {
      silent.push_back(absl::StrCat(p.endpoint, " (", p.info.status().message(), ")"));
      continue;
    }
    ++answered;
    const common::Labels labels(p.info->labels().begin(), p.info->labels().end());
    if (common::LabelsMatch(labels, group.select)) {
      selected.push_back(p.endpoint);
    } else {
      unselected.push_back(absl::StrCat(p.endpoint, " (", labels.empty() ? "no labels" : "",
                                        common::FormatLabels(labels), ")"));
    }
  }
  SortEndpoints(selected);
  const int64_t need = group.count_any ? 1 : group.count;
  if (static_cast<int64_t>(selected.size()) >= need) return selected;
  const std::string required =
      group.count_any ? "count: any needs at least 1" : absl::StrCat("count ", group.count);
  const std::string matching = group.select.empty()
                                   ? ""
                                   : absl::StrCat(", ", selected.size(), " match select {",
                                                  common::FormatLabels(group.select), "}");
  std::string message;
  if (group.discover) {
    message = absl::StrCat(FieldOf(host), ": found ", found.size(), " agent(s) at ",
                           group.discover->uri, " (", absl::StrJoin(found, ", "), "), ", answered,
                           " answered", matching, "; ", required);
  } else {
    message = absl::StrCat(FieldOf(host), ": ", answered, " of ", found.size(),
                           " listed agent(s) answered", matching, "; ", required);
  }
  if (!silent.empty()) absl::StrAppend(&message, "; did not answer: ", absl::StrJoin(silent, "; "));
  if (!unselected.empty()) {
    absl::StrAppend(&message, "; not selected: ", absl::StrJoin(unselected, "; "));
  }
  return absl::UnavailableError(message);
}

std::vector<std::string> WithoutFixedAgents(const Scenario& scenario, const HostSpec& host,
                                            const std::vector<std::string>& found,
                                            std::vector<std::string>* excluded) {
  std::map<std::string, std::string> fixed;  // agent address -> the host it is
  for (const HostSpec& h : scenario.hosts) {
    if (!h.is_group() && !h.agent.empty() && h.name != host.name) fixed.emplace(h.agent, h.name);
  }
  std::vector<std::string> kept;
  for (const std::string& endpoint : found) {
    auto it = fixed.find(endpoint);
    if (it == fixed.end()) {
      kept.push_back(endpoint);
    } else if (excluded != nullptr) {
      excluded->push_back(absl::StrCat(endpoint, " (hosts.", it->second, ")"));
    }
  }
  return kept;
}

absl::StatusOr<GroupMembers> FindGroupMembers(const Scenario& scenario,
                                              const std::map<std::string, AgentSecurity>& security,
                                              std::chrono::nanoseconds connect_timeout,
                                              std::chrono::milliseconds dns_timeout,
                                              std::map<std::string, ConnectedAgent>* connected) {
  GroupMembers out;
  for (const HostSpec& host : scenario.hosts) {
    if (!host.is_group()) continue;
    std::vector<std::string> found = host.group->agents;
    if (host.group->discover) {
      auto discovered = DiscoverAgents(*host.group->discover, dns_timeout);
      if (!discovered.ok()) {
        return absl::Status(discovered.status().code(),
                            absl::StrCat(FieldOf(host), ": ", discovered.status().message()));
      }
      found = *std::move(discovered);
    } else {
      SortEndpoints(found);
    }
    std::vector<std::string> excluded;
    found = WithoutFixedAgents(scenario, host, found, &excluded);
    auto sec = security.find(host.name);
    std::vector<MemberProbe> probes = ProbeAgents(
        found, sec == security.end() ? AgentSecurity{} : sec->second, connect_timeout, connected);
    auto members = ChooseMembers(host, found, probes);
    if (!members.ok()) {
      if (excluded.empty()) return members.status();
      return absl::Status(
          members.status().code(),
          absl::StrCat(members.status().message(),
                       "; not members, hosts of their own: ", absl::StrJoin(excluded, ", ")));
    }
    out[host.name] = *std::move(members);
  }
  return out;
}

}  // namespace synq::controller::fleet
