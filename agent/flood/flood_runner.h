// Runs a flood at host scale: plans its sources and ports, checks the host's budget (ports,
// descriptors, kernel memory) for all floods of a run together, and splits each flood over
// rings (threads) and, past the descriptor limit, worker processes; then merges the shares.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"
#include "agent/flood/source_ports.h"

namespace synq::agent {

// What the budget is checked against, read from the kernel (ReadHostBudget) or given by tests.
struct HostBudget {
  PortFacts ports;
  uint64_t fd_hard_limit = 0;  // RLIMIT_NOFILE hard limit (each worker raises its soft to it)
  uint64_t fds_open = 0;       // descriptors this process holds now
  uint64_t mem_available = 0;  // bytes, /proc/meminfo MemAvailable
  // Kernel memory one socket costs (struct tcp_sock slab + socket inode + file + dentry), from
  // /proc/slabinfo's per-object footprint (pages per slab x page size / objects per slab).
  uint64_t socket_bytes_v4 = 0;
  uint64_t socket_bytes_v6 = 0;
  std::string socket_bytes_source;  // how the figures were obtained
  uint32_t cores = 1;
  uint32_t max_workers = 64;  // most worker processes for all floods of a host
};

// Descriptors kept free in every process for rings, logs, gRPC and whatever else opens.
inline constexpr uint64_t kFdMargin = 64;
// Seconds a closed connection's 4-tuple stays in TIME_WAIT on the side that closed first.
inline constexpr uint64_t kTimeWaitSeconds = 60;

// Reads the budget's facts: port sysctls under `proc_sys_dir`, RLIMIT_NOFILE, /proc/self/fd,
// /proc/meminfo and /proc/slabinfo (when unreadable, 4096 bytes a socket, said so in source).
absl::StatusOr<HostBudget> ReadHostBudget(const std::string& proc_sys_dir);

// A flood without `threads` gets one ring per this many attempts of a process's share, at most
// the host's cores (and at most its concurrency): a 2-connection flood wakes one thread, not one
// per core.
inline constexpr uint64_t kAttemptsPerRing = 1024;

// One flood as it will run.
struct FloodPlan {
  FloodSpec spec;             // sources resolved, source_ports filled (this flood's share of ports)
  uint64_t attempts = 0;      // most attempts the schedule can launch
  uint64_t sockets = 0;       // descriptors open at once, at most
  uint64_t ports_needed = 0;  // 4-tuples towards the target in use at once (TIME_WAIT included)
  uint64_t ports_available = 0;
  uint64_t kernel_bytes = 0;  // kernel memory for `sockets` (both ends when the target is local)
  uint32_t threads = 1;       // rings per process
  uint32_t workers = 0;       // worker processes; 0 = runs in this process
};

// The most attempts a spec's schedule launches: `connections`, and when `duration` is set with
// a bounded rate, the profile's integral over it. 0 = unbounded.
uint64_t AttemptBound(const FloodSpec& spec);

// Plans all floods of a host together and checks the budget. Floods towards one target that
// share a source address get disjoint shares of its ports. FailedPrecondition with the figures
// and what to change when ports, worker processes or kernel memory do not fit; InvalidArgument
// for sources that are not local.
absl::StatusOr<std::vector<FloodPlan>> PlanFloods(const std::vector<FloodSpec>& floods,
                                                  const HostBudget& budget);

struct RunnerOptions {
  // The agent binary that has the hidden --flood-worker mode.
  std::string worker_binary = "/proc/self/exe";
};

// Runs a planned flood: in this process over plan.threads rings, or over plan.workers worker
// processes of plan.threads rings each. The result is one flood (threads = rings per process,
// workers = processes, 1 = this one); worker processes and their sockets live until the result
// (its keepalive) is dropped.
absl::StatusOr<FloodResult> RunPlannedFlood(const FloodPlan& plan,
                                            std::chrono::system_clock::time_point run_start,
                                            const std::atomic<bool>& stop,
                                            const RunnerOptions& options = {});

// Runs `spec` (a whole flood or a worker's share) over `threads` rings in this process, each
// ring RunFlood on ShareOf(spec, threads, i) with one shared open-socket counter; merges.
absl::StatusOr<FloodResult> RunFloodThreads(const FloodSpec& spec, uint32_t threads,
                                            std::chrono::system_clock::time_point run_start,
                                            const std::atomic<bool>& stop);

}  // namespace synq::agent
