// The agent's Prometheus metrics: counters and gauges the run code feeds through a few hooks,
// rendered in the Prometheus text exposition format (0.0.4). No gRPC, no HTTP: the HTTP face is
// agent/metrics/metrics_http.h. Every metric is listed with its meaning in docs/observability.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/flood/flood_spec.h"
#include "agent/kernel/sock_diag.h"

namespace synq::agent {

// Why a run ended (the `reason` label of synq_runs_ended_total).
enum class RunEndReason { kEndedByController, kLeaseExpired, kUnwatched, kAbandoned, kShutdown };
absl::string_view RunEndReasonLabel(RunEndReason reason);

// When a restore ran (the `phase` label of synq_restores_total): at agent start, from the
// journals a previous agent left, or at the end of a run.
enum class RestorePhase { kStart, kRunEnd };

// One listener's accept queue as the latest sample saw it.
struct ListenerQueueSample {
  std::string name;
  ListenQueue queue;
};

// Thread-safe; every hook takes one mutex for a few map updates, so it is cheap enough to call
// once per sample and once per flood.
class AgentMetrics {
 public:
  // `build_labels`: the labels of synq_build_info (version, engine, ...), already resolved.
  explicit AgentMetrics(std::vector<std::pair<std::string, std::string>> build_labels);

  // A run opened (BeginRun accepted).
  void RunBegun();
  // The open run ended for `reason`; its listener gauges go away.
  void RunEnded(RunEndReason reason);
  // A flood finished with `result` (its connect outcomes are added up), or failed to run.
  void FloodFinished(const FloodResult& result);
  void FloodFailed();
  // A listener of the open run is at `address` ("ip:port"): the label of its gauges.
  void ListenerAdded(const std::string& name, const std::string& address);
  // The listener stopped: its gauges go away.
  void ListenerRemoved(const std::string& name);
  // The latest sample of the open run's listeners; a listener not in it keeps no gauge value
  // (not sampled = absent, never 0).
  void ListenersSampled(const std::vector<ListenerQueueSample>& listeners);
  // A restore pass ran; `ok` false when it left something changed.
  void RestoreDone(RestorePhase phase, bool ok);
  // What the health service reports (synq_serving).
  void SetServing(bool serving);

  // The whole exposition, HELP and TYPE lines included.
  std::string Render() const;

 private:
  struct ListenerGauges {
    std::string address;
    bool sampled = false;
    ListenQueue queue;
  };

  const std::vector<std::pair<std::string, std::string>> build_labels_;
  const std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
  mutable std::mutex mu_;
  uint64_t runs_begun_ = 0;
  std::map<std::string, uint64_t> runs_ended_;  // reason -> count
  bool run_open_ = false;
  std::map<std::string, uint64_t> floods_;    // outcome -> count
  std::map<std::string, uint64_t> connects_;  // outcome -> count
  uint64_t connect_attempts_ = 0;
  std::map<std::string, uint64_t> connect_errors_;    // errno name -> count
  std::map<std::string, ListenerGauges> listeners_;   // by listener name
  std::map<std::string, uint64_t> restores_;          // phase -> count
  std::map<std::string, uint64_t> restore_failures_;  // phase -> count
  bool serving_ = false;
};

// A label value escaped for the text format: backslash, double quote and newline.
std::string EscapeLabelValue(absl::string_view value);

}  // namespace synq::agent
