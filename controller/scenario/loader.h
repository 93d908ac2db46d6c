// Loads a scenario from YAML: walks the tree, checks every field, and collects every error
// (not just the first), each named by its path.
#pragma once

#include <string>
#include <vector>

#include "controller/scenario/scenario.h"
#include "controller/scenario/scenario_error.h"

namespace synq::controller {

// Either a scenario or every error found (not just the first).
struct LoadResult {
  Scenario scenario;
  std::vector<ScenarioError> errors;
  bool ok() const { return errors.empty(); }
};

// Parses YAML text. Unknown fields, wrong types, bad durations ("100ms", "1s", "1.5s"), negative
// counts, unknown hosts, floods to listeners that do not exist, settings keys not allowed,
// sweep paths that do not name a field: each an error with its path. Sweep axes come back
// resolved (SweepAxis::resolved()): ready for ExpandSweep.
LoadResult LoadScenario(const std::string& yaml_text);
// Reads the file first; an unreadable file is one error with path "<file>".
LoadResult LoadScenarioFile(const std::string& path);

}  // namespace synq::controller
