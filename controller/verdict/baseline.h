// Baselines: compare the runs of a result with the runs of an older result (`synq run
// --baseline OLD.json`, `synq compare OLD.json NEW.json`), field by field, within tolerances.
//
// Matching. A run is compared with the baseline run whose sweep `params` are equal: the same
// paths with equal typed values (number == number, string == string, bool == bool; 16 and 16.0
// are equal, 16 and "16" are not). A run with no such baseline run gets baseline_run_index -1,
// a note and passed = true: it is not compared. The comparison as a whole fails only when no run
// matched at all (or a matched run has a regression).
//
// Compared fields of a matched run (paths as in expectations):
//   floods.F.{attempted,established,reset,refused,timed_out}
//   floods.F.fates.{accepted,queued,syn_recv,unknown_to_server,reset,refused,timed_out,error,
//                   established_unjoined}
//   floods.F.connect_latency_ms.{p50,p90,p99,max}
//   listeners.L.{backlog_effective,accepted,accept_queue_peak}
//   hosts.H.counters.C for the counters in result::kHandshakeCounters marked compared (a counter
//   that did not move is 0)
// A flood, listener or host present on one side only is one failed check ("floods.F", note
// "not in the baseline run" / "not in this run"): the two runs do not measure the same thing.
//
// Tolerance. Each field has a tolerance in percent: the default (10% unless given), or the one
// of the most specific field pattern that matches it. A pattern is a dotted path in which `*`
// stands for exactly one segment; it matches a field with the same number of segments. The
// most specific pattern is the one with the most literal (non-`*`) segments; between equally
// specific patterns the one given last wins (command line after scenario).
//
// Regression. A check fails when |current - baseline| > tolerance% * |baseline|, in either
// direction: more established connections is as much a change as fewer. A change of exactly
// the tolerance passes. A baseline of 0: a current value of 0 passes; any other current value
// fails whatever the percent tolerance (a relative change from 0 is unbounded), and its note
// says so.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "controller/result/format.h"
#include "controller/scenario.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::verdict {

// Default tolerance when neither the scenario nor the command line gives one.
inline constexpr double kDefaultTolerancePercent = 10;

struct Tolerances {
  // Unset: kDefaultTolerancePercent (and a command line that gave none leaves the scenario's).
  std::optional<double> default_percent;
  // Field pattern -> percent, in the order given (later wins between equally specific ones).
  std::vector<std::pair<std::string, double>> fields;

  // The tolerance in percent for a field path ("floods.f1.connect_latency_ms.p99").
  double For(const std::string& field) const;
};

// The scenario's `baseline:` section as tolerances.
Tolerances TolerancesFromScenario(const BaselineDef& def);

// `command_line` over `scenario`: its default replaces the scenario's when set; its patterns
// come after the scenario's, so they win between equally specific patterns.
Tolerances MergeTolerances(const Tolerances& scenario, const Tolerances& command_line);

// Parses `--tolerance 10%` (empty: not given; "10" means 10% too) and repeated
// `--tolerance-field PATTERN=PERCENT`. Errors name the flag, the value and the reason; a pattern
// that can match no compared field is an error (a typo would otherwise never apply).
absl::StatusOr<Tolerances> ParseToleranceFlags(const std::string& tolerance,
                                               const std::vector<std::string>& field_flags);

// OK when `pattern` has non-empty segments, each `*` or free of `*`, and can match at least one
// compared field (see the list above). For `synq validate` on the scenario's baseline.fields.
absl::Status ValidateTolerancePattern(const std::string& pattern);

// Fills every run's `baseline` in `current` (and current->baseline_file) by comparing it with
// the matching run of `baseline`. Returns true when no matched run has a failed check and at
// least one run matched (a result without runs passes trivially).
bool CompareWithBaseline(const synq::result::v1::Result& baseline, const std::string& baseline_file,
                         const Tolerances& tolerances, synq::result::v1::Result* current);

// `synq compare OLD NEW`: the hosts' kernel releases and settings side by side (changed values
// marked), then per run its match, every failed check (field, old, new, change, tolerance) and
// the number that passed, and a last line "PASS ..." or "REGRESSION ...". Whether it passed is
// what CompareWithBaseline(old_result, old_file, tolerances, &copy_of_new) returns.
std::string RenderComparison(const synq::result::v1::Result& old_result,
                             const std::string& old_file,
                             const synq::result::v1::Result& new_result,
                             const std::string& new_file, const Tolerances& tolerances);

// "floods.f1.established: 17 -> 9 (-47.1%), tolerance 10%" with the check's note, if any.
std::string DescribeCheck(const synq::result::v1::BaselineCheck& check);

using result::FormatNumber;  // one number format for every output (result/format.h)

// "settings.server.net.core.somaxconn=16, listeners.l1.backlog=100" (sorted by path), or "".
std::string DescribeParams(const synq::result::v1::Run& run);

}  // namespace synq::controller::verdict
