// The field tables of listeners, floods and shaping entries (name -> parse, store, sweepable)
// and the shape of settings keys. The loader and the sweep both use these,
// so a swept value is checked exactly like the field it replaces.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/limits.h"
#include "controller/scenario/scenario.h"
#include "controller/scenario/values.h"

namespace synq::controller::scenario {

// The bounds live in common/limits.h, shared with the agent's request checks.
using common::kMaxConcurrency;
using common::kMaxConnections;
using common::kMaxSourceCount;
using common::kMaxThreads;

// One field of an item of type T: how to check a scalar for it and how to store the result.
template <typename T>
struct FieldSpec {
  std::function<absl::StatusOr<FieldValue>(const Scalar&)> parse;
  // Fails only for a value `parse` did not make (another field's type).
  std::function<absl::Status(const FieldValue&, T&)> assign;
  bool sweepable = false;

  // parse, then assign.
  absl::Status Set(const Scalar& s, T& def) const {
    absl::StatusOr<FieldValue> value = parse(s);
    if (!value.ok()) return value.status();
    return assign(*value, def);
  }
};
template <typename T>
using FieldTable = std::map<std::string, FieldSpec<T>, std::less<>>;

const FieldTable<ListenerDef>& ListenerFields();
const FieldTable<FloodDef>& FloodFields();
const FieldTable<ShapingDef>& ShapingFields();
const FieldTable<ObserveDef>& ObserveFields();

// "a, b, c": the table's field names (only the sweepable ones with `sweepable_only`).
template <typename T>
std::string FieldNames(const FieldTable<T>& table, bool sweepable_only);

// The shape of a settings key (a sysctl name). Which keys a host allows, with their ranges, is
// its agent's catalog (HostInfo.setting_catalog), checked once the hosts are known
// (controller/run/setting_check.h).
absl::Status CheckSettingKey(absl::string_view key);
// The value of setting `key`: any integer (the range is the agent's).
absl::StatusOr<int64_t> ParseSetting(absl::string_view key, const Scalar& s);

// A flood's connects per second (rate, ramp ends, steps): 0 to common::kMaxFloodRate.
absl::StatusOr<double> ParseFloodRate(const Scalar& s);

// sample_interval: a duration of at least 1 ms (common::kMinSampleInterval).
absl::StatusOr<std::chrono::nanoseconds> ParseSampleInterval(const Scalar& s);

}  // namespace synq::controller::scenario
