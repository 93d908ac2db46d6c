// The diagnosis rule for a flood generator that could not keep its schedule (launches late by
// more than 1 ms, or due but never made): the offered load was lower than the scheduled one, so
// what the target did in those seconds is not what the schedule asked it to take.
#pragma once

#include <string>
#include <vector>

#include "synq/result/v1/result.pb.h"

namespace synq::controller::verdict {

inline constexpr char kRuleGeneratorBehind[] = "generator_behind";

// Appends a generator_behind finding for `flood` when it has late or dropped launches, citing
// them, the threads and concurrency, and the concurrency the schedule needs (peak scheduled
// rate x time a socket stays open: p99 connect latency, plus `lifetime` for close rst/fin; every
// attempt for close keep).
void GeneratorBehind(const std::string& name, const synq::result::v1::Flood& flood,
                     std::vector<synq::result::v1::Finding>& out);

}  // namespace synq::controller::verdict
