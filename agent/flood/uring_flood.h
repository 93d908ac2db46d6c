// The io_uring I/O layer of a flood: CONNECT with a linked LINK_TIMEOUT, SEND, POLL_ADD, cancel
// before close and before teardown, all on one ring of the calling thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"
#include "common/net_address.h"

namespace synq::agent::flood {

// Runs a validated `spec` (RunFlood's contract) on a new ring; an error only when the ring
// cannot be set up (io_uring refused or missing an opcode).
absl::StatusOr<FloodResult> RunUringFlood(const FloodSpec& spec,
                                          std::optional<common::SocketAddress> source,
                                          std::chrono::system_clock::time_point scheduled,
                                          const std::atomic<bool>& stop, uint64_t sockets);

}  // namespace synq::agent::flood
