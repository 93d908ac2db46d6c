// Drives every agent of a scenario through its runs and collects one result document.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/agent_client.h"
#include "controller/scenario.h"
#include "nlohmann/json.hpp"

namespace synq::controller {

// One host of a scenario as the orchestrator uses it.
struct HostHandle {
  std::string name;
  std::unique_ptr<AgentClient> client;
  v1::HostInfo info;
  std::string address;    // where other hosts reach its listeners ("198.18.0.2")
  std::string interface;  // for shaping ("eth0" in a lab namespace)
};

struct RunOptions {
  bool connections = false;  // include the per-connection table in result.json
  std::string out_dir;       // for captures
  std::chrono::nanoseconds start_lead{std::chrono::milliseconds(300)};
};

// A failure of an agent or host during a run (exit code 3), as opposed to bad input (2).
struct RunFailure {
  std::string host;
  std::string message;
};

class Orchestrator {
 public:
  Orchestrator(std::vector<HostHandle>& hosts, RunOptions options)
      : hosts_(hosts), options_(std::move(options)) {}

  // Runs one plan end to end; every agent's run is ended (settings restored) even on failure.
  // The run's JSON is returned also on failure, with "error" set.
  nlohmann::json Run(const RunPlan& plan, int index, std::vector<RunFailure>* failures);

  // Checks that what the scenario asks for can work on these hosts (shaping backends, settings
  // without root). Errors name the host and the reason.
  std::vector<RunFailure> CheckCapabilities(const Scenario& scenario) const;

 private:
  HostHandle* Host(const std::string& name);
  // The capture's packet counts; writes the pcap into the output folder.
  nlohmann::json CaptureJson(const v1::CaptureResult& capture, int index,
                             const std::string& host) const;
  std::vector<HostHandle>& hosts_;
  RunOptions options_;
};

// Joins client attempts with the server's sockets into per-connection fates
// (accepted, queued, syn_recv, unknown_to_server, or the client's own outcome).
std::string ConnectionFate(
    const v1::ConnectionRecord& attempt,
    const std::map<std::pair<std::string, std::string>, const v1::ServerSocket*>& server_by_tuple);

// Estimated clock offset of an agent: agent clock minus controller clock, from the GetClock
// round trip with the smallest RTT. `rtt` receives that RTT.
absl::StatusOr<std::chrono::nanoseconds> MeasureClockOffset(AgentClient& client, int rounds,
                                                            std::chrono::nanoseconds* rtt);

// The SweepValue as typed JSON (int, double, bool or string).
nlohmann::json SweepValueJson(const SweepValue& value);

}  // namespace synq::controller
