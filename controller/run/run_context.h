// The state one run carries through its phases (Begin, Prepare, Schedule, Collect, End), ending
// in the inputs of the result builder.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controller/agent_client.h"
#include "controller/result/run_builder.h"
#include "controller/run/target_resolver.h"
#include "controller/scenario.h"

namespace synq::controller {

// One host of a scenario as the run uses it.
struct HostHandle {
  std::string name;
  std::unique_ptr<AgentClient> client;
  v1::HostInfo info;
  std::string address;    // where other hosts reach its listeners ("198.18.0.2")
  std::string interface;  // for shaping ("eth0" in a lab namespace)
};

// A failure of an agent or host during a run (exit code 3), as opposed to bad input (2).
struct RunFailure {
  std::string host;
  std::string message;
};

using Clock = std::chrono::system_clock;

struct RunOptions {
  bool connections = false;  // include the per-connection table in result.json
  std::string out_dir;       // for captures
  // The least time between choosing the start instant and the instant; the lead is otherwise
  // sized from the measured fan-out (SchedulePhase).
  std::chrono::nanoseconds start_lead{std::chrono::milliseconds(300)};
  // Lease sent with BeginRun (`synq run --lease`); 0 = derived from the floods' budget.
  std::chrono::nanoseconds lease{0};
  // How long connecting to the agents and reading their host info took (Run.phase_ms "connect"
  // of the first run); unset when the caller did not measure it.
  std::optional<std::chrono::nanoseconds> connect_duration;
  // The controller's CPU time in that connect phase (Run.phase_cpu_ms "connect").
  std::optional<std::chrono::nanoseconds> connect_cpu;
  // The controller's clock; tests inject their own.
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
  // Called from gRPC callback threads for every Watch sample (progress display); must not block.
  std::function<void(const std::string& host, const v1::Sample&)> on_sample;
};

struct RunContext {
  RunContext(const RunPlan& p, int i, std::vector<HostHandle>& h, const RunOptions& o)
      : plan(p), index(i), hosts(h), options(o) {}

  const RunPlan& plan;
  const int index;
  std::vector<HostHandle>& hosts;
  const RunOptions& options;
  std::string run_id;
  std::chrono::nanoseconds lease{0};
  std::chrono::nanoseconds flood_budget{0};  // worst case for every flood to finish

  // What the builder needs, filled phase by phase; `inputs.hosts` is parallel to `hosts`.
  result::RunInputs inputs;
  std::map<std::string, BoundListener> bound;         // listener name -> where it listens
  std::vector<std::unique_ptr<WatchHandle>> watches;  // parallel to `hosts`
  std::vector<RunFailure> failures;
  // Hosts (indexes) whose agent did not answer a call within its deadline (or its keepalive
  // pings): End neither calls
  // them again nor waits for their streams (their lease, or the cancelled Watch, ends the run).
  std::set<size_t> unresponsive;

  const Scenario& scenario() const { return plan.scenario; }
  // Index of a host by name; -1 if the scenario has no such host.
  int HostIndex(const std::string& name) const;

  // Records a failure of `host` (thread-safe); later phases see ok() == false and skip.
  // `data_lost`: the host's results are incomplete because of it (marks the host's `error`);
  // false for failures after collection, such as ending the run.
  void Fail(const std::string& host, const std::string& message, bool data_lost = true);
  // Fail() for a call to host `i`'s agent that failed in `phase` ("begin", "prepare",
  // "schedule", "collect", "end"): the message ends with the phase, and a call past its
  // deadline marks the host unresponsive.
  void FailCall(size_t i, const absl::Status& status, const char* phase,
                const std::string& what = "", bool data_lost = true);
  bool ok() const;
  // Runs `fn` under the context's lock (for writes from fan-out threads).
  void Locked(const std::function<void()>& fn);

 private:
  mutable std::mutex mu_;
};

}  // namespace synq::controller
