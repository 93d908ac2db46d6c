// The `search:` section of a scenario file: parsed and checked against the floods and the sweep
// already loaded, every error naming its field ("search.precision").
#pragma once

#include <vector>

#include "controller/scenario/scenario.h"
#include "controller/scenario/scenario_error.h"

namespace YAML {
class Node;
}

namespace synq::controller::search {

// Sets `scenario.search` from `node` (even when there are errors, with what did parse) and
// returns every error. Checks: known fields only; `flood` names a flood (it may be left out when
// there is exactly one); criterion ndr or pdr; `loss` a percentage in (0, 100), for pdr and
// required by it; `trial` a duration in (0, 600s]; `start` > 0; `max` >= start; `precision` a
// positive number of connects/s or a percentage in (0, 100); the sweep does not set the searched
// flood's rate or connections (every trial sets them).
std::vector<ScenarioError> ParseSearchSection(const YAML::Node& node, Scenario& scenario);

}  // namespace synq::controller::search
