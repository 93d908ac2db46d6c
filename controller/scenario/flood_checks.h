// Cross-field rules of a sustained flood: its rate profile, duration and attempt cap, close and
// lifetime, threads against concurrency, and `sources: N` against the host's addresses.
#pragma once

#include <cstddef>
#include <vector>

#include "controller/scenario/checks.h"
#include "controller/scenario/scenario.h"

namespace synq::controller::scenario {

// The errors of flood `index` of `s`, each naming the field and the figures.
std::vector<CrossError> CheckFloodSchedule(const Scenario& s, size_t index);

}  // namespace synq::controller::scenario
