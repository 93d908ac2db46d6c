// The sustained-flood part of a result Flood (result.proto fields 24-39): what the scenario
// asked for (close, lifetime, duration, rate profile), what the generator managed (late and
// dropped launches, threads, workers, sources) and the per-second series with its percentiles
// and scheduled rate, so the second where a target starts to fail is visible.
#pragma once

#include <string>
#include <vector>

#include "controller/scenario.h"
#include "synq/agent/v1/agent.pb.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

// Fills `out`'s fields 24-39 from the agent's `flood` and the scenario's `def` (may be null:
// then only what the agent measured). Unmeasured figures are named in `not_observed`.
void FillSustainedFlood(const agent::v1::FloodResult& flood, const FloodDef* def,
                        synq::result::v1::Flood* out, std::vector<std::string>* not_observed);

// One result FloodSecond from the agent's: counts, connect latency percentiles from that
// second's histogram (absent when nothing connected), and `rate`, the mean scheduled rate in
// that second from `def`'s profile (0 without a def or for a constant rate of 0).
synq::result::v1::FloodSecond BuildSecond(const agent::v1::FloodSecond& second,
                                          const FloodDef* def);

// True when the agent reported the 0.4 fields (threads >= 1): fates then come from the counters
// and the held connections, never from per-connection records.
bool HasSustainedFields(const agent::v1::FloodResult& flood);

}  // namespace synq::controller::result
