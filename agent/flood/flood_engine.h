// Runs one connect flood on its own io_uring: no thread and no blocking call per connection.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"

namespace synq::agent {

// Runs `spec` on the calling thread: waits until `run_start + spec.start_after` (CLOCK_REALTIME),
// launches `connections` attempts (at most `concurrency` connects in flight, paced to `rate`),
// each an IORING_OP_CONNECT linked to an IORING_OP_LINK_TIMEOUT of `connect_timeout`; sends the
// payload after connect; watches established connections for resets until `hold` after the
// last connect resolved; then closes everything and returns. Returns early (outcomes so far,
// unfinished attempts counted as errors "ECANCELED") when `stop` becomes true; attempts not yet
// launched then are not counted. Always attempted == connections.size() == sum of the outcomes.
// The spec is also checked (ValidateFloodSpec). Errors only for setup problems: ring creation,
// missing opcodes, or an fd limit too low for `connections` sockets (checked up front after raising
// the soft limit to the hard one).
absl::StatusOr<FloodResult> RunFlood(const FloodSpec& spec,
                                     std::chrono::system_clock::time_point run_start,
                                     const std::atomic<bool>& stop);

// Checks that `needed` more descriptors fit under RLIMIT_NOFILE, raising the soft limit to the
// hard one first. The error names both limits and the need.
absl::Status EnsureFdBudget(uint64_t needed);

// Checks a spec's fields (connections >= 1, concurrency >= 1, finite rate >= 0,
// connect_timeout > 0, hold >= 0, an IPv4/IPv6 target, a parseable source of the target's
// family). InvalidArgument naming the field.
absl::Status ValidateFloodSpec(const FloodSpec& spec);

// The symbolic name of an errno value ("ECONNREFUSED"), or "errno N" if it has none.
std::string ErrnoName(int err);

}  // namespace synq::agent
