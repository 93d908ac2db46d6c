// A flood's launch schedule as the controller computes with it: the scheduled rate at an
// instant or over a second (the result's per-second `rate`), the number of launches a window
// holds, and the profile in words ("ramp 200/s to 3000/s over 10s").
#pragma once

#include <chrono>
#include <string>

#include "controller/scenario/scenario.h"

namespace synq::controller {

// The scheduled launch rate (connects/s) at `t` after the flood's start: constant, the linear
// ramp (`ramp_to` after `ramp_over`), or the step holding `t` (the last step after the steps).
// 0 for a constant rate of 0 (as fast as concurrency allows: no schedule).
double ScheduledRate(const FloodDef& f, std::chrono::nanoseconds t);

// Launches the schedule holds in [from, to): the integral of ScheduledRate.
double ScheduledLaunches(const FloodDef& f, std::chrono::nanoseconds from,
                         std::chrono::nanoseconds to);

// The mean scheduled rate over second `second` of the flood ([second, second + 1) s), cut at
// the flood's `duration` when it ends inside that second.
double ScheduledRateInSecond(const FloodDef& f, uint32_t second);

// How long the profile itself lasts: ramp_over, steps x steps_each; 0 for a constant rate.
std::chrono::nanoseconds ProfileLength(const FloodDef& f);

// "constant 2000/s", "as fast as possible", "ramp 1000/s to 50000/s over 30s",
// "steps 1000/s, 2000/s, 4000/s each 5s".
std::string DescribeRateProfile(const FloodDef& f);

// "keep", "rst", "fin".
const char* CloseModeName(CloseMode mode);

}  // namespace synq::controller

namespace synq::controller {

// How long the flood launches at most: its `duration`, else the time the schedule takes to
// hold `connections` launches (capped at a day; 0 for a constant rate of 0).
std::chrono::nanoseconds LaunchWindow(const FloodDef& f);

}  // namespace synq::controller
