// Flood worker processes: the agent re-executes itself (`synq-agent --flood-worker`) to run a
// share of a flood under a fresh RLIMIT_NOFILE, and merges what the workers report.
//
// Pipe protocol. The parent writes to the worker's stdin one request (u32 length, then the
// share: run start, index/count, rings, schedule stride/offset, concurrency, source ports, and a
// serialized v1::FloodSpec), and later the byte 'S' to stop it early. The worker writes to its
// fd 3 one reply (u8 'R' + u32 length + serialized v1::FloodResult, or 'E' + u32 length +
// message), then holds its sockets until its stdin reaches EOF (the parent dropped the flood's
// result, or died). Worker stdout goes to /dev/null; stderr is the agent's, each line tagged.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"

namespace synq::agent {

// Runs `spec` over `workers` processes of `threads` rings each (share w = ShareOf(spec, workers,
// w)), started from `worker_binary`. `attempts` (the plan's bound) is only for reporting what a
// lost worker's share was. Returns the merged result of the workers that reported; a worker that
// failed, crashed or sent garbage is named in worker_errors, its share counted nowhere. Error only
// when no worker reported. result.keepalive owns the workers: dropping it closes their stdin, so
// they close their sockets and exit; they are reaped then.
absl::StatusOr<FloodResult> RunFloodWorkers(const FloodSpec& spec, uint32_t workers,
                                            uint32_t threads, uint64_t attempts,
                                            std::chrono::system_clock::time_point run_start,
                                            const std::atomic<bool>& stop,
                                            const std::string& worker_binary);

// The worker side: `synq-agent --flood-worker --parent PID`. Returns the exit code.
int FloodWorkerMain(int argc, char** argv);

// True when argv asks for the worker mode (argv[1] == "--flood-worker").
bool IsFloodWorkerInvocation(int argc, char** argv);

}  // namespace synq::agent
