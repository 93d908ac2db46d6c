// What a sweep path names, resolved once by the loader: the field (FieldRef) plus how to check
// a value for it and how to store a checked value in a scenario.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "controller/scenario/values.h"

namespace synq::controller {

struct Scenario;

// One field of a scenario, by position: "listeners.l1.backlog" is {kListener, 0, "", "backlog"},
// "settings.server.net.core.somaxconn" is {kSetting, 0, "server", "net.core.somaxconn"}.
struct FieldRef {
  enum class Kind { kSampleInterval, kListener, kFlood, kShaping, kSetting };
  Kind kind = Kind::kSampleInterval;
  size_t index = 0;   // listener / flood / shaping index
  std::string host;   // settings host
  std::string field;  // field name, or the sysctl key for settings

  bool operator==(const FieldRef&) const = default;
};

// A resolved sweep target (made by ResolveSweepTarget in controller/scenario/sweep.h).
struct SweepTarget {
  FieldRef ref;
  // Checks one value for the field, exactly as the field's own entry in a file is checked.
  std::function<absl::StatusOr<scenario::FieldValue>(const scenario::Scalar&)> parse;
  // Stores a value made by `parse` in `scenario`; fails only if `scenario` lacks the item
  // (it is not the scenario the target was resolved against).
  std::function<absl::Status(const scenario::FieldValue&, Scenario&)> assign;

  // False for a default-constructed target (an axis not made by the loader or MakeSweepAxis).
  bool resolved() const { return parse && assign; }
};

}  // namespace synq::controller
