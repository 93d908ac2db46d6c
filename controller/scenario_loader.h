// Loads a scenario from YAML, validates it, and expands its sweep into runs.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/scenario.h"

namespace synq::controller {

// One problem in a scenario file: the field path ("floods[0].target", "listeners.l1.backlog")
// and why it is wrong.
struct ScenarioError {
  std::string path;
  std::string message;
  std::string ToString() const { return path + ": " + message; }
};

// Either a scenario or every error found (not just the first).
struct LoadResult {
  Scenario scenario;
  std::vector<ScenarioError> errors;
  bool ok() const { return errors.empty(); }
};

// Parses YAML text. Unknown fields, wrong types, bad durations ("100ms", "1s", "1.5s"), negative
// counts, unknown hosts, floods to listeners that do not exist, settings keys not allowed,
// sweep paths that do not name a field: each an error with its path.
LoadResult LoadScenario(const std::string& yaml_text);
// Reads the file first; an unreadable file is one error with path "<file>".
LoadResult LoadScenarioFile(const std::string& path);

// Every combination of sweep values (first axis outermost), each applied to a copy of the
// scenario; a scenario without sweep gives one run with empty params. Applying a value can fail
// (type mismatch), which is reported as an error with the sweep path.
absl::StatusOr<std::vector<RunPlan>> ExpandSweep(const Scenario& scenario);

// "100ms", "2s", "1.5s", "250us", "0" -> duration. Error text says what is accepted.
absl::StatusOr<std::chrono::nanoseconds> ParseDuration(const std::string& text);

}  // namespace synq::controller
