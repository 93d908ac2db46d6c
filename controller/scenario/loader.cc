#include "controller/scenario/loader.h"

#include <yaml-cpp/yaml.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/limits.h"
#include "controller/scenario/checks.h"
#include "controller/scenario/discover_target.h"
#include "controller/scenario/fields.h"
#include "controller/scenario/flood_nodes.h"
#include "controller/scenario/paths.h"
#include "controller/scenario/rate_profile.h"
#include "controller/scenario/sweep.h"
#include "controller/scenario/values.h"
#include "controller/search/search_section.h"

namespace synq::controller {
namespace scenario {
namespace {

using ErrorList = std::vector<ScenarioError>;

absl::string_view Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "nothing (null)";
  }
}

// A quoted scalar ('80', "80") is a string, whatever it looks like.
bool IsQuoted(const YAML::Node& node) {
  return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
}

// The loader: walks the YAML tree, collects every error. yaml-cpp is only read through
// Type()/Scalar()/Tag()/iteration, which do not throw on a loaded tree; LoadScenario still
// catches at the boundary in case.

class Loader {
 public:
  LoadResult Load(const YAML::Node& root);

 private:
  using Entries = std::vector<std::pair<std::string, YAML::Node>>;

  void Error(std::string path, absl::string_view message) {
    errors_.push_back({std::move(path), std::string(message)});
  }
  void Error(std::string path, const absl::Status& status) {
    Error(std::move(path), status.message());
  }

  // A map's entries in file order; non-scalar and duplicate keys are reported and dropped.
  // With `duplicates`, duplicate keys are handed back instead, for the caller to report once it
  // knows the item's path.
  Entries MapEntries(const YAML::Node& map, const std::string& path,
                     std::vector<std::string>* duplicates = nullptr);
  // The scalar at `node`, or an error "expected <what>, got a map".
  std::optional<Scalar> GetScalar(const YAML::Node& node, const std::string& path,
                                  absl::string_view what);
  std::string ResolveHost(const Entries& entries, const std::string& item_path);
  // A light check of an agent address: HOST:PORT (HOST may be a DNS name) or unix:/path.
  void CheckAgentAddress(const std::string& text, const std::string& path);
  // `discover:`, `agents:`, `count:` and `select:` of a host group.
  void ParseHostGroupField(const std::string& key, const YAML::Node& value, const std::string& path,
                           HostSpec& host);
  // What a group needs once all its fields are read (one source of members, a count).
  void CheckHostGroup(const std::string& path, HostSpec& host);
  void CheckHostRef(const std::string& host, const std::string& path);

  void ParseHosts(const YAML::Node* node);
  void ParseHostTls(const YAML::Node& node, const std::string& path, HostTls& tls);
  void ParseSettings(const YAML::Node& node);
  void ParseCaptures(const YAML::Node& node);
  template <typename T>
  void ParseItems(const YAML::Node& node, const std::string& section, const FieldTable<T>& fields,
                  std::vector<T>& out);
  void ParseSweep(const YAML::Node& node);
  // A listener's `pause: [{at: 2s, for: 3s}, ...]`.
  void ParsePauses(const YAML::Node& node, const std::string& path, ListenerDef& def);
  void ParseExpect(const YAML::Node& node);
  void ParseBaseline(const YAML::Node& node);
  void CheckCombinations();
  // A flood from a group to a listener on a group is refused (which member to which?).
  void CheckGroupFloods();

  Scenario s_;
  ErrorList errors_;
  // Listeners whose file sets accept_interval or accept_rate (index, field); only meaningful
  // when accept is paced.
  std::vector<std::pair<size_t, std::string>> literal_intervals_;
  bool sweep_ok_ = true;
};

Loader::Entries Loader::MapEntries(const YAML::Node& map, const std::string& path,
                                   std::vector<std::string>* duplicates) {
  Entries out;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar()) {
      Error(path.empty() ? "<root>" : path, "keys must be plain strings");
      continue;
    }
    std::string key = it->first.Scalar();
    if (!seen.insert(key).second) {
      if (duplicates != nullptr) {
        duplicates->push_back(std::move(key));
      } else {
        Error(JoinPath(path, key), "duplicate field");
      }
      continue;
    }
    out.emplace_back(std::move(key), it->second);
  }
  return out;
}

std::optional<Scalar> Loader::GetScalar(const YAML::Node& node, const std::string& path,
                                        absl::string_view what) {
  if (!node.IsScalar()) {
    Error(path, absl::StrCat("expected ", what, ", got ", Describe(node)));
    return std::nullopt;
  }
  return Scalar{node.Scalar(), IsQuoted(node)};
}

void Loader::CheckHostRef(const std::string& host, const std::string& path) {
  if (s_.FindHost(host) == nullptr) Error(path, absl::StrCat("no host named ", Quote(host)));
}

// The item's `host`, defaulting to the only host.
std::string Loader::ResolveHost(const Entries& entries, const std::string& item_path) {
  const std::string path = JoinPath(item_path, "host");
  for (const auto& [key, value] : entries) {
    if (key != "host") continue;
    std::optional<Scalar> host = GetScalar(value, path, "a host name");
    if (!host) return "";
    CheckHostRef(host->text, path);
    return host->text;
  }
  if (s_.hosts.size() == 1) return s_.hosts.front().name;
  Error(path, "required when there is more than one host");
  return "";
}

void Loader::CheckAgentAddress(const std::string& agent, const std::string& path) {
  // Light check only: agents may be named by DNS ("agent-0.synq:7700") in Kubernetes.
  absl::string_view text = agent;
  uint32_t port = 0;
  const size_t colon = text.rfind(':');
  if (absl::ConsumePrefix(&text, "unix:")) {
    if (text.empty()) Error(path, "unix: needs a socket path");
  } else if (colon == absl::string_view::npos || colon == 0 ||
             !absl::SimpleAtoi(text.substr(colon + 1), &port) || port == 0 || port > 65535) {
    Error(path, absl::StrCat("expected HOST:PORT or unix:/path, got ", Quote(agent)));
  }
}

void Loader::ParseHostGroupField(const std::string& key, const YAML::Node& value,
                                 const std::string& path, HostSpec& host) {
  if (!host.group) host.group.emplace();
  HostGroup& group = *host.group;
  if (key == "discover") {
    std::optional<Scalar> uri = GetScalar(value, path, "a URI (dns:///NAME:PORT)");
    if (!uri) return;
    absl::StatusOr<DiscoverTarget> target = ParseDiscoverTarget(uri->text);
    if (!target.ok()) {
      Error(path, target.status());
      return;
    }
    group.discover = *std::move(target);
    return;
  }
  if (key == "agents") {
    if (!value.IsSequence() || value.size() == 0) {
      Error(path, absl::StrCat("expected a non-empty list of agent addresses, got ",
                               value.IsSequence() ? "an empty list" : Describe(value)));
      return;
    }
    if (value.size() > static_cast<size_t>(kMaxGroupSize)) {
      Error(path, absl::StrCat("at most ", kMaxGroupSize, " agents, got ", value.size()));
      return;
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < value.size(); ++i) {
      const std::string item_path = IndexPath(path, i);
      std::optional<Scalar> agent = GetScalar(value[i], item_path, "an agent address");
      if (!agent) continue;
      CheckAgentAddress(agent->text, item_path);
      if (!seen.insert(agent->text).second) {
        Error(item_path, absl::StrCat(Quote(agent->text), " listed twice"));
        continue;
      }
      group.agents.push_back(agent->text);
    }
    return;
  }
  if (key == "select") {
    if (!value.IsMap() || value.size() == 0) {
      Error(path, absl::StrCat("expected a map of label -> value ({zone: eu-west-1a}), got ",
                               Describe(value)));
      return;
    }
    for (const auto& [label, v] : MapEntries(value, path)) {
      const std::string label_path = JoinPath(path, label);
      if (absl::Status s = common::CheckLabelKey(label); !s.ok()) {
        Error(label_path, s);
        continue;
      }
      std::optional<Scalar> wanted = GetScalar(v, label_path, "a label value");
      if (!wanted) continue;
      if (absl::Status s = common::CheckLabelValue(wanted->text); !s.ok()) {
        Error(label_path, s);
        continue;
      }
      group.select[label] = wanted->text;
    }
    return;
  }
  // count
  std::optional<Scalar> count = GetScalar(value, path, "a number of agents or any");
  if (!count) return;
  if (!count->quoted && count->text == "any") {
    group.count_any = true;
    return;
  }
  absl::StatusOr<int64_t> n = ParseInt(*count, 1, kMaxGroupSize);
  if (!n.ok()) {
    Error(path, absl::StrCat(n.status().message(), " (or any)"));
    group.count = -1;  // reported: CheckHostGroup says nothing more about it
    return;
  }
  group.count = *n;
}

void Loader::CheckHostGroup(const std::string& path, HostSpec& host) {
  if (!host.group) return;
  HostGroup& group = *host.group;
  if (!host.agent.empty()) {
    Error(JoinPath(path, "agent"),
          "a host is one agent (agent:) or a group (discover: or agents:), not both");
  }
  if (group.discover && !group.agents.empty()) {
    Error(JoinPath(path, "agents"), "a group has discover: or agents:, not both");
  }
  const bool has_source = group.discover || !group.agents.empty();
  if (!has_source) {
    Error(JoinPath(path, "discover"),
          "count: and select: need the group's agents: discover: URI or agents: [ADDRESS, ...]");
    return;
  }
  if (group.count < 0) return;
  if (group.discover && group.count == 0 && !group.count_any) {
    Error(JoinPath(path, "count"),
          "required with discover: how many agents must answer (a number, or any)");
  }
  if (!group.agents.empty() && group.count == 0 && !group.count_any) {
    group.count = static_cast<int64_t>(group.agents.size());  // every listed agent must answer
  }
  if (!group.agents.empty() && group.count > static_cast<int64_t>(group.agents.size())) {
    Error(JoinPath(path, "count"),
          absl::StrCat(group.count, " agents but agents: lists ", group.agents.size()));
  }
}

void Loader::ParseHosts(const YAML::Node* node) {
  if (node == nullptr) {
    s_.hosts.push_back({"local", ""});
    return;
  }
  if (!node->IsMap()) {
    Error("hosts", absl::StrCat("expected a map of host name -> {} or {agent: ADDRESS}, got ",
                                Describe(*node)));
    return;
  }
  for (const auto& [name, spec] : MapEntries(*node, "hosts")) {
    const std::string path = JoinPath("hosts", name);
    if (!IsValidHostName(name)) {
      Error(path, absl::StrCat("host names must match [a-z0-9][a-z0-9-]* and be at most ",
                               kMaxHostNameLength, " characters"));
    }
    HostSpec host{name, ""};
    if (spec.IsMap()) {
      for (const auto& [key, value] : MapEntries(spec, path)) {
        const std::string field_path = JoinPath(path, key);
        if (key == "interface") {
          std::optional<Scalar> interface = GetScalar(value, field_path, "an interface name");
          if (!interface) continue;
          if (interface->text.empty() || interface->text.size() > 15 ||
              interface->text.find_first_of("/ \t") != std::string::npos) {
            Error(field_path, "expected an interface name of 1 to 15 characters");
          }
          host.interface = interface->text;
          continue;
        }
        if (key == "addresses") {
          std::optional<Scalar> count = GetScalar(value, field_path, "a number of addresses");
          if (!count) continue;
          absl::StatusOr<int64_t> n = ParseInt(*count, 1, kMaxSourceCount);
          if (n.ok()) {
            host.addresses = *n;
          } else {
            Error(field_path, n.status());
          }
          continue;
        }
        if (key == "tls") {
          ParseHostTls(value, field_path, host.tls);
          continue;
        }
        if (key == "discover" || key == "agents" || key == "count" || key == "select") {
          ParseHostGroupField(key, value, field_path, host);
          continue;
        }
        if (key != "agent") {
          Error(field_path, "unknown field");
          continue;
        }
        std::optional<Scalar> agent = GetScalar(value, field_path, "an agent address");
        if (!agent) continue;
        CheckAgentAddress(agent->text, field_path);
        host.agent = agent->text;
      }
      CheckHostGroup(path, host);
    } else if (!spec.IsNull()) {
      Error(path,
            absl::StrCat("expected {} or {agent: ADDRESS} or a group {discover: URI, count: N}"
                         " / {agents: [ADDRESS, ...]}, got ",
                         Describe(spec)));
    }
    for (const HostSpec& other : s_.hosts) {
      if (host.is_group() && other.is_group()) {
        for (const std::string& a : host.group->agents) {
          for (const std::string& b : other.group->agents) {
            if (a == b) {
              Error(JoinPath(path, "agents"),
                    absl::StrCat(Quote(a), " is also in hosts.", other.name, ".agents"));
            }
          }
        }
        continue;
      }
      const HostSpec* plain = host.is_group() ? &other : &host;
      const HostSpec* group = host.is_group() ? &host : other.is_group() ? &other : nullptr;
      if (group != nullptr) {
        if (plain->embedded()) continue;
        for (const std::string& a : group->group->agents) {
          if (a == plain->agent) {
            Error(JoinPath(path, host.is_group() ? "agents" : "agent"),
                  absl::StrCat(Quote(a), " is both hosts.", plain->name, " and a member of hosts.",
                               group->name));
          }
        }
        continue;
      }
      if (!host.embedded() && other.agent == host.agent) {
        // One agent holds one run at a time: two hosts on it would share (and fight over) it.
        Error(JoinPath(path, "agent"), absl::StrCat("same agent as hosts.", other.name));
      }
    }
    if (!host.embedded() && host.addresses != 1) {
      Error(JoinPath(path, "addresses"),
            "only for embedded hosts: a host with an agent has the addresses it has");
    }
    if (host.embedded() && !host.interface.empty()) {
      Error(JoinPath(path, "interface"), "only for hosts with an agent: embedded hosts use eth0");
    }
    if (!host.tls.empty() && (host.embedded() || absl::StartsWith(host.agent, "unix:"))) {
      Error(JoinPath(path, "tls"),
            "only for agents on HOST:PORT: embedded hosts and unix: agents are local");
    }
    s_.hosts.push_back(std::move(host));
  }
  if (node->size() == 0) Error("hosts", "needs at least one host");
}

void Loader::ParseHostTls(const YAML::Node& node, const std::string& path, HostTls& tls) {
  if (!node.IsMap()) {
    Error(path, absl::StrCat("expected {cert: FILE, key: FILE, ca: FILE, server_name: NAME}, got ",
                             Describe(node)));
    return;
  }
  for (const auto& [key, value] : MapEntries(node, path)) {
    const std::string field_path = JoinPath(path, key);
    std::string* field = key == "cert"          ? &tls.cert
                         : key == "key"         ? &tls.key
                         : key == "ca"          ? &tls.ca
                         : key == "server_name" ? &tls.server_name
                                                : nullptr;
    if (field == nullptr) {
      Error(field_path, "unknown field (expected cert, key, ca, server_name)");
      continue;
    }
    std::optional<Scalar> text =
        GetScalar(value, field_path, key == "server_name" ? "a host name" : "a file path");
    if (!text) continue;
    if (text->text.empty()) {
      Error(field_path, "must not be empty");
      continue;
    }
    *field = text->text;
  }
  // Mutual TLS needs all three files; a name to check means nothing without them.
  const std::pair<const char*, const std::string*> required[] = {
      {"cert", &tls.cert}, {"key", &tls.key}, {"ca", &tls.ca}};
  for (const auto& [name, value] : required) {
    if (value->empty()) {
      Error(JoinPath(path, name), "required in a tls: block (cert, key and ca go together)");
    }
  }
}

void Loader::ParseSettings(const YAML::Node& node) {
  if (!node.IsMap()) {
    Error("settings",
          absl::StrCat("expected a map of host -> {sysctl: value}, got ", Describe(node)));
    return;
  }
  for (const auto& [host, keys] : MapEntries(node, "settings")) {
    const std::string path = JoinPath("settings", host);
    CheckHostRef(host, path);
    if (!keys.IsMap()) {
      Error(path, absl::StrCat("expected a map of sysctl -> integer, got ", Describe(keys)));
      continue;
    }
    for (const auto& [key, value] : MapEntries(keys, path)) {
      const std::string key_path = JoinPath(path, key);
      absl::Status key_ok = CheckSettingKey(key);
      if (!key_ok.ok()) {
        Error(key_path, key_ok);
        continue;
      }
      std::optional<Scalar> scalar = GetScalar(value, key_path, "an integer");
      if (!scalar) continue;
      absl::StatusOr<int64_t> setting = ParseSetting(key, *scalar);
      if (!setting.ok()) {
        Error(key_path, setting.status());
        continue;
      }
      s_.settings[host][key] = *setting;
    }
  }
}

void Loader::ParseCaptures(const YAML::Node& node) {
  if (!node.IsSequence()) {
    Error("capture", absl::StrCat("expected a list of host names, got ", Describe(node)));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string path = IndexPath("capture", i);
    std::optional<Scalar> host = GetScalar(node[i], path, "a host name");
    if (!host) continue;
    CheckHostRef(host->text, path);
    for (const CaptureDef& c : s_.captures) {
      if (c.host == host->text)
        Error(path, absl::StrCat("host ", Quote(host->text), " listed twice"));
    }
    s_.captures.push_back({host->text});
  }
}

template <typename T>
void Loader::ParseItems(const YAML::Node& node, const std::string& section,
                        const FieldTable<T>& fields, std::vector<T>& out) {
  constexpr bool kNamed = requires(T t) { t.name; };
  if (!node.IsSequence()) {
    Error(section, absl::StrCat("expected a list, got ", Describe(node)));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    out.emplace_back();
    T& def = out.back();
    if (!item.IsMap()) {
      Error(IndexPath(section, i), absl::StrCat("expected a map, got ", Describe(item)));
      continue;
    }
    std::vector<std::string> duplicates;
    const Entries entries = MapEntries(item, IndexPath(section, i), &duplicates);
    // The name comes first: it decides the path of every other error in this item.
    if constexpr (kNamed) {
      bool has_name = false;
      for (const auto& [key, value] : entries) {
        if (key != "name") continue;
        has_name = true;
        std::optional<Scalar> name =
            GetScalar(value, JoinPath(IndexPath(section, i), "name"), "a name");
        if (!name) break;
        def.name = name->text;
        if (!IsValidItemName(def.name)) {
          Error(JoinPath(IndexPath(section, i), "name"),
                absl::StrCat(Quote(def.name),
                             " is not a valid name: use letters, digits, - and _"
                             " (at most ",
                             kMaxItemNameLength, ")"));
        } else {
          for (size_t j = 0; j + 1 < out.size(); ++j) {
            if (out[j].name == def.name) {
              Error(JoinPath(IndexPath(section, i), "name"),
                    absl::StrCat("duplicate name ", Quote(def.name)));
              break;
            }
          }
        }
      }
      if (!has_name) Error(JoinPath(IndexPath(section, i), "name"), "required");
    }
    const std::string path = ItemPath(section, out, i);
    for (const std::string& key : duplicates) Error(JoinPath(path, key), "duplicate field");
    def.host = ResolveHost(entries, path);
    for (const auto& [key, value] : entries) {
      if (key == "host" || (kNamed && key == "name")) continue;
      const std::string field_path = JoinPath(path, key);
      if constexpr (std::is_same_v<T, FloodDef>) {
        if (ParseFloodNode(key, value, field_path, def, errors_)) continue;
      }
      if constexpr (std::is_same_v<T, ListenerDef>) {
        if (key == "pause") {
          ParsePauses(value, field_path, def);
          continue;
        }
      }
      auto field = fields.find(key);
      // Dotted names ("rate.to") are sweep paths into a map, never keys of a file.
      if (field == fields.end() || absl::StrContains(key, '.')) {
        Error(field_path, "unknown field");
        continue;
      }
      std::optional<Scalar> scalar = GetScalar(value, field_path, "a scalar value");
      if (!scalar) continue;
      absl::Status status = field->second.Set(*scalar, def);
      if (!status.ok()) Error(field_path, status);
    }
    // Per-kind rules on what the file itself says.
    auto has = [&entries](absl::string_view key) {
      for (const auto& entry : entries) {
        if (entry.first == key) return true;
      }
      return false;
    };
    if constexpr (std::is_same_v<T, ListenerDef>) {
      for (const char* pace : {"accept_interval", "accept_rate"}) {
        if (has(pace) && def.accept != AcceptMode::kPaced) literal_intervals_.emplace_back(i, pace);
      }
    }
    if constexpr (std::is_same_v<T, FloodDef>) {
      if (!has("target")) Error(JoinPath(path, "target"), "required");
      // A flood bounded by time has no attempt cap unless the file sets one; a ramp or steps
      // with neither runs for the profile's own length.
      if (!has("connections") && def.rate_kind != RateKind::kConstant && !has("duration")) {
        def.duration = ProfileLength(def);
      }
      if (!has("connections") && def.duration.count() > 0) def.connections = 0;
    }
    if constexpr (std::is_same_v<T, ObserveDef>) {
      if (!has("port")) Error(JoinPath(path, "port"), "required: the port the server listens on");
    }
    if constexpr (std::is_same_v<T, ShapingDef>) {
      if (!def.to.empty()) {
        CheckHostRef(def.to, JoinPath(path, "to"));
        if (def.to == def.host) Error(JoinPath(path, "to"), "must differ from host");
      }
    }
  }
}

void Loader::ParsePauses(const YAML::Node& node, const std::string& path, ListenerDef& def) {
  if (!node.IsSequence()) {
    Error(path, absl::StrCat("expected a list of {at: DURATION, for: DURATION}, got ",
                             Describe(node)));
    return;
  }
  if (node.size() > static_cast<size_t>(common::kMaxPauses)) {
    Error(path, absl::StrCat("at most ", common::kMaxPauses, " pauses, got ", node.size()));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item_path = IndexPath(path, i);
    if (!node[i].IsMap()) {
      Error(item_path, absl::StrCat("expected {at: DURATION, for: DURATION}, got ",
                                    Describe(node[i])));
      continue;
    }
    ListenerDef::Pause pause;
    bool has_at = false;  // present in the file, valid or not
    bool has_for = false;
    bool valid = true;
    for (const auto& [key, value] : MapEntries(node[i], item_path)) {
      const std::string key_path = JoinPath(item_path, key);
      if (key != "at" && key != "for") {
        Error(key_path, "unknown field (known: at, for)");
        continue;
      }
      (key == "at" ? has_at : has_for) = true;
      std::optional<Scalar> text = GetScalar(value, key_path, "a duration");
      // at: from the flood start, 0 allowed; for: a window of some length.
      absl::StatusOr<std::chrono::nanoseconds> d =
          text ? ParseDurationAtLeast(*text, key == "at") : Invalid("");
      if (!d.ok()) {
        if (text) Error(key_path, d.status());
        valid = false;
        continue;
      }
      (key == "at" ? pause.at : pause.length) = *d;
    }
    if (!has_at) Error(JoinPath(item_path, "at"), "required");
    if (!has_for) Error(JoinPath(item_path, "for"), "required");
    if (has_at && has_for && valid) def.pauses.push_back(pause);
  }
}

void Loader::ParseSweep(const YAML::Node& node) {
  if (!node.IsMap()) {
    Error("sweep", absl::StrCat("expected a map of path -> list of values, got ", Describe(node)));
    sweep_ok_ = false;
    return;
  }
  const size_t errors_before = errors_.size();
  for (const auto& [path, values] : MapEntries(node, "sweep")) {
    const std::string sweep_path = JoinPath("sweep", path);
    // The path is resolved here, once; the axis carries the target to every later use.
    absl::StatusOr<SweepTarget> target = ResolveSweepTarget(s_, path);
    if (!target.ok()) {
      Error(sweep_path, target.status());
      continue;
    }
    for (const SweepAxis& other : s_.sweep) {
      if (other.target.ref == target->ref) {
        Error(sweep_path, absl::StrCat("sweeps the same field as ", Quote(other.path)));
      }
    }
    if (!values.IsSequence() || values.size() == 0) {
      Error(sweep_path, absl::StrCat("expected a non-empty list of values, got ",
                                     values.IsSequence() ? "an empty list" : Describe(values)));
      continue;
    }
    SweepAxis axis{path, {}, *std::move(target), {}};
    for (size_t i = 0; i < values.size(); ++i) {
      const YAML::Node item = values[i];
      if (!item.IsScalar()) {
        Error(sweep_path, absl::StrCat("value ", i, ": expected a scalar, got ", Describe(item)));
        continue;
      }
      // Typed once (the run's param) and checked once for the field (what the run stores).
      SweepValue value = SweepValue::FromYaml(item.Scalar(), IsQuoted(item));
      absl::StatusOr<FieldValue> parsed = axis.target.parse(ScalarOf(value));
      if (!parsed.ok()) {
        Error(sweep_path,
              absl::StrCat("value ", value.Describe(), ": ", parsed.status().message()));
        continue;
      }
      axis.values.push_back(std::move(value));
      axis.field_values.push_back(*std::move(parsed));
    }
    s_.sweep.push_back(std::move(axis));
  }
  sweep_ok_ = errors_.size() == errors_before;
  if (sweep_ok_ && CountRuns(s_.sweep) > kMaxRuns) {
    Error("sweep", absl::StrCat("more than ", kMaxRuns, " runs; sweep fewer values"));
    sweep_ok_ = false;
  }
}

// Cross-field errors of the base scenario, or of every sweep run. An error that depends on a
// swept field is reported against that sweep path with the values that cause it.
void Loader::CheckCombinations() {
  std::set<std::string> reported;
  auto report = [&](ScenarioError error) {
    if (reported.insert(error.ToString()).second) errors_.push_back(std::move(error));
  };
  auto swept_axes = [&](const CrossError& e) {
    std::vector<size_t> axes;
    for (size_t a = 0; a < s_.sweep.size(); ++a) {
      for (const FieldRef& ref : e.involves) {
        if (ref == s_.sweep[a].target.ref) axes.push_back(a);
      }
    }
    return axes;
  };
  if (!sweep_ok_ || s_.sweep.empty()) {
    // Without a (valid) sweep, judge the base alone; skip errors a broken sweep may fix.
    for (CrossError& e : CheckCrossFields(s_)) {
      if (swept_axes(e).empty()) report(std::move(e.error));
    }
    return;
  }
  std::vector<size_t> sizes;
  for (const SweepAxis& axis : s_.sweep) sizes.push_back(axis.values.size());
  // Each run is the base without its sweep: copying the sweep (every value of every axis) into
  // every run made checking a 100,000-value sweep quadratic.
  Scenario base = s_;
  base.sweep.clear();
  ForEachCombination(sizes, [&](const std::vector<size_t>& indices) {
    Scenario run = base;
    // Every value was checked for its field while parsing; storing it cannot fail.
    (void)ApplyCombination(s_.sweep, indices, run);
    for (CrossError& e : CheckCrossFields(run)) {
      const std::vector<size_t> axes = swept_axes(e);
      if (axes.empty()) {
        report(std::move(e.error));
        continue;
      }
      std::vector<std::string> with;
      with.reserve(axes.size());
      for (size_t a : axes) {
        with.push_back(
            absl::StrCat(s_.sweep[a].path, "=", s_.sweep[a].values[indices[a]].Describe()));
      }
      report({JoinPath("sweep", s_.sweep[axes.front()].path),
              absl::StrCat("with ", absl::StrJoin(with, ", "), ": ", e.error.ToString())});
    }
    return reported.size() < 100;  // enough to act on; avoid walking a huge sweep of failures
  });
}

void Loader::CheckGroupFloods() {
  for (size_t i = 0; i < s_.floods.size(); ++i) {
    const FloodDef& f = s_.floods[i];
    const HostSpec* from = s_.FindHost(f.host);
    std::string target_host;
    if (const ListenerDef* l = s_.FindListener(f.target)) target_host = l->host;
    if (const ObserveDef* o = s_.FindObserved(f.target)) target_host = o->host;
    const HostSpec* to = target_host.empty() ? nullptr : s_.FindHost(target_host);
    if (from == nullptr || to == nullptr || !from->is_group() || !to->is_group()) continue;
    Error(JoinPath(ItemPath("floods", s_.floods, i), "target"),
          absl::StrCat("a flood on a group (hosts.", from->name, ") cannot target a listener on a",
                       " group (hosts.", to->name, "): every member to every member is not",
                       " implied; place the flood on a single host (it then floods each member's",
                       " listener) or target ADDRESS:PORT"));
  }
}

void Loader::ParseExpect(const YAML::Node& node) {
  if (!node.IsSequence()) {
    Error("expect", absl::StrCat("expected a list of expressions, got ", Describe(node)));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string path = IndexPath("expect", i);
    std::optional<Scalar> text = GetScalar(node[i], path, "an expression");
    if (!text) continue;
    if (absl::StripAsciiWhitespace(text->text).empty()) {
      Error(path, "must not be empty");
      continue;
    }
    s_.expectations.push_back({text->text, path});
  }
}

void Loader::ParseBaseline(const YAML::Node& node) {
  if (!node.IsMap()) {
    Error("baseline",
          absl::StrCat("expected {tolerance: 10%, fields: {PATH: 25%}}, got ", Describe(node)));
    return;
  }
  for (const auto& [key, value] : MapEntries(node, "baseline")) {
    const std::string path = JoinPath("baseline", key);
    if (key == "tolerance") {
      if (std::optional<Scalar> text = GetScalar(value, path, "a percentage")) {
        absl::StatusOr<double> percent = ParsePercent(*text);
        if (percent.ok()) {
          s_.baseline.tolerance_percent = *percent;
        } else {
          Error(path, percent.status());
        }
      }
    } else if (key == "fields") {
      if (!value.IsMap()) {
        Error(path,
              absl::StrCat("expected a map of field path -> tolerance, got ", Describe(value)));
        continue;
      }
      for (const auto& [field, tolerance] : MapEntries(value, path)) {
        const std::string field_path = JoinPath(path, field);
        std::optional<Scalar> text = GetScalar(tolerance, field_path, "a percentage");
        if (!text) continue;
        absl::StatusOr<double> percent = ParsePercent(*text);
        if (!percent.ok()) {
          Error(field_path, percent.status());
          continue;
        }
        s_.baseline.fields.emplace_back(field, *percent);
      }
    } else {
      Error(path, "unknown field (known: tolerance, fields)");
    }
  }
}

LoadResult Loader::Load(const YAML::Node& root) {
  static const std::set<std::string, std::less<>> kTopLevel = {
      "name",      "sample_interval", "hosts", "settings", "shaping",  "capture",
      "listeners", "floods",          "sweep", "expect",   "baseline", "observe",
      "search"};
  if (!root.IsMap() && !root.IsNull()) {
    Error("<root>", absl::StrCat("expected a map of scenario fields, got ", Describe(root)));
    return {std::move(s_), std::move(errors_)};
  }
  std::map<std::string, YAML::Node, std::less<>> top;
  if (root.IsMap()) {
    for (auto& [key, value] : MapEntries(root, "")) {
      if (!kTopLevel.contains(key)) {
        Error(key, "unknown field");
        continue;
      }
      top.emplace(key, value);
    }
  }
  auto find = [&top](absl::string_view key) -> const YAML::Node* {
    auto it = top.find(key);
    return it == top.end() ? nullptr : &it->second;
  };

  if (const YAML::Node* name = find("name")) {
    if (std::optional<Scalar> text = GetScalar(*name, "name", "a string")) {
      s_.name = text->text;
      if (s_.name.empty()) Error("name", "must not be empty");
    }
  } else {
    Error("name", "required");
  }
  if (const YAML::Node* interval = find("sample_interval")) {
    if (std::optional<Scalar> text = GetScalar(*interval, "sample_interval", "a duration")) {
      absl::StatusOr<std::chrono::nanoseconds> interval = ParseSampleInterval(*text);
      if (interval.ok()) {
        s_.sample_interval = *interval;
      } else {
        Error("sample_interval", interval.status());
      }
    }
  }
  ParseHosts(find("hosts"));
  if (const YAML::Node* node = find("settings")) ParseSettings(*node);
  if (const YAML::Node* node = find("shaping")) {
    ParseItems(*node, "shaping", ShapingFields(), s_.shaping);
  }
  if (const YAML::Node* node = find("capture")) ParseCaptures(*node);
  if (const YAML::Node* node = find("listeners")) {
    ParseItems(*node, "listeners", ListenerFields(), s_.listeners);
  }
  if (const YAML::Node* node = find("observe")) {
    ParseItems(*node, "observe", ObserveFields(), s_.observes);
  }
  if (const YAML::Node* node = find("floods")) {
    ParseItems(*node, "floods", FloodFields(), s_.floods);
  }
  if (const YAML::Node* node = find("sweep")) ParseSweep(*node);
  if (const YAML::Node* node = find("expect")) ParseExpect(*node);
  if (const YAML::Node* node = find("baseline")) ParseBaseline(*node);
  if (const YAML::Node* node = find("search")) {
    for (ScenarioError& e : search::ParseSearchSection(*node, s_)) errors_.push_back(std::move(e));
  }

  CheckGroupFloods();
  for (const auto& [i, pace] : literal_intervals_) {
    const FieldRef accept{FieldRef::Kind::kListener, i, "", "accept"};
    bool accept_swept = false;
    for (const SweepAxis& axis : s_.sweep) accept_swept = accept_swept || axis.target.ref == accept;
    if (!accept_swept) {
      Error(JoinPath(ItemPath("listeners", s_.listeners, i), pace),
            "only used with accept: paced");
    }
  }
  CheckCombinations();
  return {std::move(s_), std::move(errors_)};
}

}  // namespace
}  // namespace scenario

LoadResult LoadScenario(const std::string& yaml_text) {
  // yaml-cpp reports through exceptions; they stop here and become errors.
  try {
    const YAML::Node root = YAML::Load(yaml_text);
    return scenario::Loader().Load(root);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return {{}, {{"<yaml>", e.msg}}};
    return {{},
            {{"<yaml>", absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ",
                                     e.msg)}}};
  } catch (const std::exception& e) {
    return {{}, {{"<yaml>", e.what()}}};
  }
}

LoadResult LoadScenarioFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return {{},
            {{"<file>",
              absl::StrCat("cannot open ", scenario::Quote(path), ": ", std::strerror(errno))}}};
  }
  std::string text;
  std::array<char, size_t{64} * 1024> buffer;
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) text.append(buffer.data(), n);
  const bool failed = std::ferror(file) != 0;
  const int saved_errno = errno;
  std::fclose(file);
  if (failed) {
    return {{},
            {{"<file>", absl::StrCat("cannot read ", scenario::Quote(path), ": ",
                                     std::strerror(saved_errno))}}};
  }
  return LoadScenario(text);
}

}  // namespace synq::controller
