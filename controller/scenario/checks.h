// Checks that span fields, run on every concrete scenario (the base, or each sweep run): a paced
// listener needs an accept interval, a flood's target must be a listener or ADDRESS:PORT.
#pragma once

#include <vector>

#include "controller/scenario/scenario.h"
#include "controller/scenario/scenario_error.h"
#include "controller/scenario/sweep_target.h"

namespace synq::controller::scenario {

// An error plus the fields it depends on, so that an error caused by a swept value can be
// reported against the sweep axis that sets it.
struct CrossError {
  ScenarioError error;
  std::vector<FieldRef> involves;
};

// Every cross-field error of `s`, listeners first, then floods, each in file order.
std::vector<CrossError> CheckCrossFields(const Scenario& s);

}  // namespace synq::controller::scenario
