// Builds one run's typed result (synq.result.v1.Run) from what the agents returned. Pure: no
// I/O, no clock; every figure comes from the inputs, and what was not measured is left unset
// and named in `not_observed`.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controller/scenario.h"
#include "synq/agent/v1/agent.pb.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

// Everything one host contributed to a run.
struct HostReplies {
  std::string name;
  std::string agent;    // the agent's address
  std::string address;  // where peers reach its listeners
  agent::v1::HostInfo info;
  // Settings read back after the scenario's were applied, and the shaping in force.
  std::map<std::string, int64_t> applied_settings;
  std::vector<agent::v1::Shaping> applied_shaping;
  // Agent clock minus controller clock; unset when it was not measured.
  std::optional<std::chrono::nanoseconds> clock_offset;
  // The final snapshot; unset when collection did not happen (the host or the run failed).
  std::optional<agent::v1::CollectResultsResponse> collected;
  std::vector<agent::v1::Sample> samples;
  std::string pcap_file;  // the capture saved in the output folder, if any
  std::string error;      // what failed on this host during the run
};

// Where a flood was aimed, resolved once before it started.
struct ResolvedTarget {
  std::string ip;
  uint32_t port = 0;
  std::string listener;  // the listener it names, if any
  // "ip:port", IPv6 in brackets.
  std::string ToString() const;
};

struct RunInputs {
  const RunPlan* plan = nullptr;
  int index = 0;
  std::string run_id;
  std::vector<HostReplies> hosts;                 // in scenario order
  std::map<std::string, ResolvedTarget> targets;  // flood name -> target
  // The instant every flood was scheduled from (controller clock); unset when none started.
  std::optional<std::chrono::system_clock::time_point> start_at;
  bool connections = false;  // keep every attempt
  std::vector<std::string> errors;
  // What the phases could not measure, with why ("samples of host 'x' may be incomplete ...").
  std::vector<std::string> not_observed;
  std::chrono::nanoseconds duration{0};
};

// The run's result: hosts (kernel, settings in force, shaping, counter deltas, packets, drop
// events), listeners, floods (counts, latency, fates joined across every host's sockets, start
// lateness on the controller's clock), samples on the controller's clock. What the inputs do not
// hold is left unset and named in `not_observed`; a host without a snapshot keeps what it did
// return and says why its counters are missing.
synq::result::v1::Run BuildRun(const RunInputs& in);

// The sweep value as a typed JSON value (number, bool or string).
void SetParamValue(const SweepValue& value, google::protobuf::Value* out);

}  // namespace synq::controller::result
