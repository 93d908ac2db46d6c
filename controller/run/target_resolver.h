// Resolves a flood's target once, before it starts: a listener name becomes the listener's
// bound port at the address its host is reached at from the flooding host.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "controller/result/run_builder.h"
#include "controller/scenario.h"

namespace synq::controller {

// A listener as bound on its host.
struct BoundListener {
  std::string host;
  std::string ip;  // bound address: "0.0.0.0", "::", or a specific one
  uint32_t port = 0;
};

// `listener` is the listener the flood's target names (null for "ADDRESS:PORT", taken as given),
// `bound` where it was bound, `listener_host_address` where peers reach its host. A wildcard
// listener is reached over loopback from its own host, else at its host's address. Errors name
// the flood and the reason.
absl::StatusOr<result::ResolvedTarget> ResolveTarget(const FloodDef& flood,
                                                     const ListenerDef* listener,
                                                     const BoundListener* bound,
                                                     const std::string& listener_host_address);

}  // namespace synq::controller
