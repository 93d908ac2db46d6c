#include "controller/scenario/flood_nodes.h"

#include <limits>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/net_address.h"
#include "common/limits.h"
#include "controller/scenario/fields.h"
#include "controller/scenario/paths.h"
#include "controller/scenario/values.h"

namespace synq::controller::scenario {
namespace {

using std::chrono::nanoseconds;

bool IsQuotedNode(const YAML::Node& node) {
  return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
}

// The value of one scalar entry, or an error naming its path.
std::optional<Scalar> ScalarAt(const YAML::Node& node, const std::string& path,
                               std::vector<ScenarioError>& errors) {
  if (!node.IsScalar()) {
    errors.push_back({path, "expected a scalar value"});
    return std::nullopt;
  }
  return Scalar{node.Scalar(), IsQuotedNode(node)};
}

std::optional<double> RateAt(const YAML::Node& node, const std::string& path,
                             std::vector<ScenarioError>& errors) {
  std::optional<Scalar> s = ScalarAt(node, path, errors);
  if (!s) return std::nullopt;
  absl::StatusOr<double> rate = ParseFloodRate(*s);
  if (!rate.ok()) {
    errors.push_back({path, std::string(rate.status().message())});
    return std::nullopt;
  }
  return *rate;
}

std::optional<nanoseconds> DurationAt(const YAML::Node& node, const std::string& path,
                                      std::vector<ScenarioError>& errors) {
  std::optional<Scalar> s = ScalarAt(node, path, errors);
  if (!s) return std::nullopt;
  absl::StatusOr<nanoseconds> d = ParseDurationAtLeast(*s, /*allow_zero=*/false);
  if (!d.ok()) {
    errors.push_back({path, std::string(d.status().message())});
    return std::nullopt;
  }
  return *d;
}

void ParseRateMap(const YAML::Node& map, const std::string& path, FloodDef& def,
                  std::vector<ScenarioError>& errors) {
  std::set<std::string> keys;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar()) {
      errors.push_back({path, "keys must be plain strings"});
      continue;
    }
    keys.insert(it->first.Scalar());
  }
  const bool ramp = keys.contains("from") || keys.contains("to") || keys.contains("over");
  const bool steps = keys.contains("steps") || keys.contains("each");
  if (ramp && steps) {
    errors.push_back({path, "either a ramp {from, to, over} or steps {steps, each}, not both"});
    return;
  }
  if (!ramp && !steps) {
    errors.push_back({path,
                      "expected a number, a ramp {from: 1000, to: 50000, over: 30s} or steps "
                      "{steps: [1000, 2000], each: 5s}"});
    return;
  }
  for (const std::string& key : keys) {
    static const std::set<std::string> kKnown = {"from", "to", "over", "steps", "each"};
    if (!kKnown.contains(key)) {
      errors.push_back({JoinPath(path, key), ramp ? "unknown field (a ramp has from, to, over)"
                                                  : "unknown field (steps have steps, each)"});
    }
  }
  if (ramp) {
    def.rate_kind = RateKind::kRamp;
    for (const char* key : {"from", "to", "over"}) {
      if (!keys.contains(key)) errors.push_back({JoinPath(path, key), "required for a ramp"});
    }
    if (map["from"]) {
      if (auto v = RateAt(map["from"], JoinPath(path, "from"), errors)) def.ramp_from = *v;
    }
    if (map["to"]) {
      if (auto v = RateAt(map["to"], JoinPath(path, "to"), errors)) def.ramp_to = *v;
    }
    if (map["over"]) {
      if (auto v = DurationAt(map["over"], JoinPath(path, "over"), errors)) def.ramp_over = *v;
    }
    return;
  }
  def.rate_kind = RateKind::kSteps;
  for (const char* key : {"steps", "each"}) {
    if (!keys.contains(key)) errors.push_back({JoinPath(path, key), "required for steps"});
  }
  if (const YAML::Node list = map["steps"]; list) {
    const std::string steps_path = JoinPath(path, "steps");
    if (!list.IsSequence() || list.size() == 0) {
      errors.push_back({steps_path, "expected a non-empty list of rates (connects/s)"});
    } else if (list.size() > static_cast<size_t>(common::kMaxRateSteps)) {
      errors.push_back({steps_path, absl::StrCat("at most ", common::kMaxRateSteps,
                                                 " steps, got ", list.size())});
    } else {
      def.steps.clear();
      for (size_t i = 0; i < list.size(); ++i) {
        if (auto v = RateAt(list[i], IndexPath(steps_path, i), errors)) def.steps.push_back(*v);
      }
    }
  }
  if (map["each"]) {
    if (auto v = DurationAt(map["each"], JoinPath(path, "each"), errors)) def.steps_each = *v;
  }
}

void ParseSourceList(const YAML::Node& list, const std::string& path, FloodDef& def,
                     std::vector<ScenarioError>& errors) {
  if (list.size() == 0) {
    errors.push_back({path, "expected a non-empty list of addresses, or a number of addresses"});
    return;
  }
  if (list.size() > static_cast<size_t>(common::kMaxSourceCount)) {
    errors.push_back({path, absl::StrCat("at most ", common::kMaxSourceCount,
                                         " addresses, got ", list.size())});
    return;
  }
  def.sources.clear();
  def.source_count = 0;
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string item_path = IndexPath(path, i);
    std::optional<Scalar> s = ScalarAt(list[i], item_path, errors);
    if (!s) continue;
    absl::StatusOr<common::SocketAddress> address = common::ParseHostAddress(s->text, 0);
    if (!address.ok()) {
      errors.push_back({item_path, std::string(address.status().message())});
      continue;
    }
    if (!seen.insert(s->text).second) {
      errors.push_back({item_path, absl::StrCat(Quote(s->text), " listed twice")});
      continue;
    }
    def.sources.push_back(s->text);
  }
}

}  // namespace

bool ParseFloodNode(const std::string& key, const YAML::Node& value, const std::string& path,
                    FloodDef& def, std::vector<ScenarioError>& errors) {
  if (key == "rate" && value.IsMap()) {
    ParseRateMap(value, path, def, errors);
    return true;
  }
  if (key == "sources" && value.IsSequence()) {
    ParseSourceList(value, path, def, errors);
    return true;
  }
  return false;
}

}  // namespace synq::controller::scenario
