// The agent's request messages checked and converted to the engines' types: pure functions (no
// gRPC, no I/O, no run state), so the service and the fuzzer (tests/fuzz/agent_requests_fuzzer.cc)
// run the same code. Every error is InvalidArgument naming the field and the bound
// (common/limits.h); what needs the host or the run (addresses owned, settings catalog, run
// ownership) is checked later by the run manager.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"
#include "agent/listener/listener.h"
#include "agent/shaping/shaper.h"
#include "synq/agent/v1/agent.pb.h"

namespace synq::agent {

// BeginRun: sample_interval in [1 ms, 24 h]; lease 0 (the agent's default) up to
// common::kMaxLease.
struct BeginRunSpec {
  std::chrono::nanoseconds sample_interval{0};
  std::chrono::nanoseconds lease{0};
};
absl::StatusOr<BeginRunSpec> ToBeginRun(const synq::agent::v1::BeginRunRequest& request);

// ApplySettings: key -> value; a key given twice or empty is an error (the catalog of keys and
// their ranges is the run manager's).
absl::StatusOr<std::map<std::string, int64_t>> ToSettings(
    const synq::agent::v1::ApplySettingsRequest& request);

// ApplyShaping: backends known, delay and jitter in [0, 1 min], loss a percentage, interface a
// Linux interface name.
absl::StatusOr<std::vector<ShapingRequest>> ToShapingRequests(
    const synq::agent::v1::ApplyShapingRequest& request);

// StartListener: port 0..65535, the accept mode and its pacing (exactly one of accept_interval
// and accept_rate when paced, neither otherwise), pauses with at >= 0 and length > 0.
absl::StatusOr<ListenerSpec> ToListenerSpec(const synq::agent::v1::StartListenerRequest& request);

// ObserveListener: a name, port 1..65535.
struct ObserveSpec {
  std::string name;
  uint16_t port = 0;
  std::string address;
};
absl::StatusOr<ObserveSpec> ToObserveSpec(const synq::agent::v1::ObserveListenerRequest& request);

// StartFloods: every flood through FromProto (agent/flood/flood_proto.h), with its bounds.
struct FloodsSpec {
  // Unset: arm `floods` (RunManager::StartFloods).
  std::optional<std::chrono::system_clock::time_point> start_at;
  std::vector<FloodSpec> floods;
};
absl::StatusOr<FloodsSpec> ToFloodsSpec(const synq::agent::v1::StartFloodsRequest& request);

}  // namespace synq::agent
