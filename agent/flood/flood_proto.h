// Flood specs and results between the engine's structs and the agent proto: used by the gRPC
// service and by flood worker processes (which ship results over a pipe).
#pragma once

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"
#include "common/histogram.h"
#include "synq/agent/v1/agent.pb.h"

namespace synq::agent {

synq::agent::v1::Outcome ToProto(Outcome o);
CloseMode FromProto(synq::agent::v1::CloseMode c);
synq::agent::v1::CloseMode ToProto(CloseMode c);

void ToProto(const common::Histogram& h, synq::agent::v1::Histogram* out);
common::Histogram FromProto(const synq::agent::v1::Histogram& h);

// Every field of the result except held_sockets and keepalive (descriptors stay in the process
// that holds them).
void ToProto(const FloodResult& f, synq::agent::v1::FloodResult* out);
// The inverse of ToProto(FloodResult): what a worker process ships back. held_sockets comes back
// empty. InvalidArgument for what no engine produces (an unknown outcome, a local port > 65535).
absl::StatusOr<FloodResult> FromProto(const synq::agent::v1::FloodResult& f);

// InvalidArgument naming "floods.NAME.FIELD" for a spec the engine cannot run. Sets both
// `rate` and `profile` (a constant profile carries `rate`). source_ports, schedule_stride/offset
// and open_sockets are the agent's own split and are left at their defaults.
absl::StatusOr<FloodSpec> FromProto(const synq::agent::v1::FloodSpec& f);

}  // namespace synq::agent
