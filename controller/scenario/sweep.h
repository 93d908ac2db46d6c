// Sweeps: a path resolved once into a typed target, values checked once for their field, and
// the expansion into one concrete scenario per combination of values.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controller/scenario/scenario.h"

namespace synq::controller {

// An axis for `path` with `values`, resolved against `base` and each value checked for the
// field, as the loader does for a `sweep:` entry. For code that builds a sweep without YAML;
// the first problem is the error ("sweep.listeners.l9.backlog: no listener named 'l9'",
// "sweep.listeners.l1.backlog: value 'lots': expected an integer, got the string 'lots'").
absl::StatusOr<SweepAxis> MakeSweepAxis(const Scenario& base, std::string path,
                                        std::vector<SweepValue> values);

// Every combination of sweep values (first axis outermost), each applied to a copy of the
// scenario through the axes' resolved targets (no path is resolved and no value parsed again);
// a scenario without sweep gives one run with empty params. Errors name the sweep path: an
// axis not made by the loader or MakeSweepAxis, an axis without values, too many runs, or a run
// whose combination breaks a cross-field rule.
absl::StatusOr<std::vector<RunPlan>> ExpandSweep(const Scenario& scenario);

namespace scenario {

// Every run of a sweep is a real load test lasting seconds; more than this is a typo.
inline constexpr uint64_t kMaxRuns = 100'000;

// What `path` names in `s`: sample_interval, listeners.<name>.<field>, floods.<name>.<field>,
// settings.<host>.<key>, shaping[<i>].<field> or shaping.<host>.<field>; the field must be
// sweepable. The error says what is wrong without the "sweep.<path>: " prefix.
absl::StatusOr<SweepTarget> ResolveSweepTarget(const Scenario& s, absl::string_view path);

// The scalar a typed sweep value is checked as: its Text(), quoted for a string.
Scalar ScalarOf(const SweepValue& value);

// Stores value `indices[a]` of every axis `a` in `s`. Axes must be resolved.
absl::Status ApplyCombination(const std::vector<SweepAxis>& axes,
                              const std::vector<size_t>& indices, Scenario& s);

// Walks every combination of axis values, first axis outermost. `visit` gets the value index
// per axis; returns false to stop. No axes: one empty combination. An empty axis: none.
void ForEachCombination(const std::vector<size_t>& sizes,
                        const std::function<bool(const std::vector<size_t>&)>& visit);

// Number of runs, saturating at kMaxRuns + 1.
uint64_t CountRuns(const std::vector<SweepAxis>& axes);

}  // namespace scenario
}  // namespace synq::controller
