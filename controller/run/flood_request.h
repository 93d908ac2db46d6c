// The sustained-flood part of a StartFloods request: duration, rate profile, lifetime, close,
// threads, sources and per-connection records, from the scenario's flood and its host.
#pragma once

#include "absl/status/status.h"
#include "controller/scenario.h"
#include "synq/agent/v1/agent.pb.h"

namespace synq::controller {

// Fills FloodSpec fields 11-19 (and `rate` for a constant profile) of `spec` from `f`.
// `sources: N` becomes the first N addresses of the flooding host (`host.addresses()`) of the
// target's family; fewer than N is an error naming floods.<name>.sources with the figures.
// `keep_records` is the run's --connections: per-connection records only then.
absl::Status FillSustainedFloodSpec(const FloodDef& f, const agent::v1::HostInfo& host,
                                    bool target_is_ipv6, bool keep_records,
                                    agent::v1::FloodSpec* spec);

}  // namespace synq::controller
