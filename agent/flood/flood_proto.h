// Flood specs and results between the engine's structs and the agent proto: used by the gRPC
// service and by flood worker processes (which ship results over a pipe).
#pragma once

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"
#include "synq/agent/v1/agent.pb.h"

namespace synq::agent {

synq::agent::v1::Outcome ToProto(Outcome o);
void ToProto(const FloodResult& f, synq::agent::v1::FloodResult* out);
// InvalidArgument naming "floods.NAME.FIELD" for a spec the engine cannot run.
absl::StatusOr<FloodSpec> FromProto(const synq::agent::v1::FloodSpec& f);

}  // namespace synq::agent
