// common:: kinds <-> synq.agent.v1 enums, for both agent and controller. UNSPECIFIED (and any
// value this build does not know) is invalid, per the API's enum convention.
#pragma once

#include "absl/status/statusor.h"
#include "common/modes.h"
#include "synq/agent/v1/agent.pb.h"

namespace synq::proto {

inline agent::v1::AcceptMode ToProto(common::AcceptMode mode) {
  switch (mode) {
    case common::AcceptMode::kNever:
      return agent::v1::ACCEPT_MODE_NEVER;
    case common::AcceptMode::kPaced:
      return agent::v1::ACCEPT_MODE_PACED;
    case common::AcceptMode::kImmediate:
      return agent::v1::ACCEPT_MODE_IMMEDIATE;
  }
  return agent::v1::ACCEPT_MODE_UNSPECIFIED;
}

inline absl::StatusOr<common::AcceptMode> FromProto(agent::v1::AcceptMode mode) {
  switch (mode) {
    case agent::v1::ACCEPT_MODE_NEVER:
      return common::AcceptMode::kNever;
    case agent::v1::ACCEPT_MODE_PACED:
      return common::AcceptMode::kPaced;
    case agent::v1::ACCEPT_MODE_IMMEDIATE:
      return common::AcceptMode::kImmediate;
    default:
      return absl::InvalidArgumentError("listener.accept: must be NEVER, PACED or IMMEDIATE");
  }
}

inline agent::v1::ShapingBackend ToProto(common::ShapingBackend backend) {
  switch (backend) {
    case common::ShapingBackend::kAuto:
      return agent::v1::SHAPING_BACKEND_AUTO;
    case common::ShapingBackend::kNetem:
      return agent::v1::SHAPING_BACKEND_NETEM;
    case common::ShapingBackend::kNfqueue:
      return agent::v1::SHAPING_BACKEND_NFQUEUE;
  }
  return agent::v1::SHAPING_BACKEND_UNSPECIFIED;
}

inline absl::StatusOr<common::ShapingBackend> FromProto(agent::v1::ShapingBackend backend) {
  switch (backend) {
    case agent::v1::SHAPING_BACKEND_AUTO:
      return common::ShapingBackend::kAuto;
    case agent::v1::SHAPING_BACKEND_NETEM:
      return common::ShapingBackend::kNetem;
    case agent::v1::SHAPING_BACKEND_NFQUEUE:
      return common::ShapingBackend::kNfqueue;
    default:
      return absl::InvalidArgumentError("shaping.backend: must be AUTO, NETEM or NFQUEUE");
  }
}

// "netem", "nfqueue", "auto" as scenarios spell them.
inline const char* ShapingBackendName(agent::v1::ShapingBackend backend) {
  switch (backend) {
    case agent::v1::SHAPING_BACKEND_NETEM:
      return "netem";
    case agent::v1::SHAPING_BACKEND_NFQUEUE:
      return "nfqueue";
    case agent::v1::SHAPING_BACKEND_AUTO:
      return "auto";
    default:
      return "unspecified";
  }
}

}  // namespace synq::proto
