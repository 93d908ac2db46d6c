// The epoll I/O layer of a flood, for hosts that refuse io_uring (a seccomp profile returning
// EPERM, kernel.io_uring_disabled, an old kernel): non-blocking connect() watched for EPOLLOUT
// (outcome from SO_ERROR), connect timeouts from a deadline queue, answers and EOF from
// EPOLLIN/EPOLLRDHUP, waits with epoll_pwait2's nanosecond timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"
#include "common/net_address.h"

namespace synq::agent::flood {

// Runs a validated `spec` (RunFlood's contract) on a new epoll instance; an error only when it
// cannot be created.
absl::StatusOr<FloodResult> RunEpollFlood(const FloodSpec& spec,
                                          std::optional<common::SocketAddress> source,
                                          std::chrono::system_clock::time_point scheduled,
                                          const std::atomic<bool>& stop, uint64_t sockets);

}  // namespace synq::agent::flood
