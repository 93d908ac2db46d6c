// The controller's view of one agent: an interface (so orchestration can be tested with fakes)
// and its gRPC implementation.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tls_files.h"
#include "synq/agent/v1/agent.pb.h"

namespace synq::controller {

namespace v1 = ::synq::agent::v1;

// A live Watch stream; destroying it cancels the stream (which makes the agent end the run).
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
  // Waits for the stream to end (after EndRun) and returns how it ended.
  virtual absl::Status Wait() = 0;
  // The same, waiting at most until `deadline` before cancelling the stream (so that many
  // streams can share one bound); fakes that end at once need not override it.
  virtual absl::Status WaitUntil(std::chrono::steady_clock::time_point deadline) {
    (void)deadline;
    return Wait();
  }
};

// Where an asynchronous call answers: once, with the reply or the call's error.
template <typename T>
using Reply = std::function<void(absl::StatusOr<T>)>;
using Done = std::function<void(absl::Status)>;

// Every call has a blocking form and an asynchronous one (`...Async`). The asynchronous form
// returns at once and calls `done` exactly once, from a gRPC callback thread (so `done` must not
// block) or, in the default implementations below, inline after the blocking form: fakes that
// implement only the blocking calls keep working, one agent at a time. The controller's phases
// use the asynchronous forms, so a phase fans out to every agent at once without a thread each.
class AgentClient {
 public:
  virtual ~AgentClient() = default;
  virtual const std::string& address() const = 0;

  virtual void GetHostInfoAsync(Reply<v1::HostInfo> done) { done(GetHostInfo()); }
  virtual void GetClockAsync(Reply<v1::GetClockResponse> done) { done(GetClock()); }
  virtual void BeginRunAsync(const v1::BeginRunRequest& request, Done done) {
    done(BeginRun(request));
  }
  virtual void ApplySettingsAsync(const v1::ApplySettingsRequest& request,
                                  Reply<v1::ApplySettingsResponse> done) {
    done(ApplySettings(request));
  }
  virtual void ApplyShapingAsync(const v1::ApplyShapingRequest& request,
                                 Reply<v1::ApplyShapingResponse> done) {
    done(ApplyShaping(request));
  }
  virtual void StartListenerAsync(const v1::StartListenerRequest& request,
                                  Reply<v1::StartListenerResponse> done) {
    done(StartListener(request));
  }
  virtual void ObserveListenerAsync(const v1::ObserveListenerRequest& request,
                                    Reply<v1::StartListenerResponse> done) {
    done(ObserveListener(request));
  }
  virtual void StartCaptureAsync(const v1::StartCaptureRequest& request,
                                 Reply<v1::StartCaptureResponse> done) {
    done(StartCapture(request));
  }
  virtual void StartFloodsAsync(const v1::StartFloodsRequest& request, Done done) {
    done(StartFloods(request));
  }
  virtual void CollectResultsAsync(const std::string& run_id, std::chrono::nanoseconds timeout,
                                   bool wait_only, Reply<v1::CollectResultsResponse> done) {
    done(CollectResults(run_id, timeout, wait_only));
  }
  virtual void EndRunAsync(const std::string& run_id, Reply<v1::EndRunResponse> done) {
    done(EndRun(run_id));
  }

  virtual absl::StatusOr<v1::HostInfo> GetHostInfo() = 0;
  virtual absl::StatusOr<v1::GetClockResponse> GetClock() = 0;
  virtual absl::Status BeginRun(const v1::BeginRunRequest& request) = 0;
  virtual absl::StatusOr<v1::ApplySettingsResponse> ApplySettings(
      const v1::ApplySettingsRequest& request) = 0;
  virtual absl::StatusOr<v1::ApplyShapingResponse> ApplyShaping(
      const v1::ApplyShapingRequest& request) = 0;
  virtual absl::StatusOr<v1::StartListenerResponse> StartListener(
      const v1::StartListenerRequest& request) = 0;
  // Watches a listener another process owns. Not pure: fakes that never observe need not care.
  virtual absl::StatusOr<v1::StartListenerResponse> ObserveListener(
      const v1::ObserveListenerRequest& request) {
    (void)request;
    return absl::UnimplementedError("this agent client cannot observe listeners");
  }
  virtual absl::StatusOr<v1::StartCaptureResponse> StartCapture(
      const v1::StartCaptureRequest& request) = 0;
  virtual absl::Status StartFloods(const v1::StartFloodsRequest& request) = 0;
  // Calls `on_sample` from a gRPC callback thread for each sample until the run ends (never at
  // once for one stream). The agent sends its samples in batches, rarely (WatchRequest
  // batch_interval), and the rest when the run ends: the series is whole once Wait() returns.
  virtual absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(
      const std::string& run_id, std::function<void(const v1::Sample&)> on_sample) = 0;
  // Waits for the run's floods to finish (up to `timeout`); with `wait_only` returns nothing else.
  virtual absl::StatusOr<v1::CollectResultsResponse> CollectResults(
      const std::string& run_id, std::chrono::nanoseconds timeout, bool wait_only = false) = 0;
  virtual absl::StatusOr<v1::EndRunResponse> EndRun(const std::string& run_id) = 0;
};

// How the controller and an agent prove who they are: mutual TLS from checked PEM material, or
// plaintext (unix sockets, embedded hosts, loopback agents, agents started with --insecure).
struct AgentSecurity {
  std::optional<common::TlsMaterial> tls;  // null = plaintext
  common::TlsFileSet files;                // where `tls` came from, named in errors
  std::string server_name;  // the name checked on the agent's certificate; empty = its address
};

// Reads and checks the controller's certificate, key and CA (errors name the setting, the file
// and the reason); empty files = plaintext.
absl::StatusOr<AgentSecurity> LoadAgentSecurity(const common::TlsFileSet& files,
                                                std::string server_name);

// Connects to "host:port" or "unix:/path". Waits up to `connect_timeout` for the channel;
// an unreachable agent is Unavailable naming the address. With TLS, or against an agent that
// serves TLS when we have none, a failed connection says why (wrong CA, wrong name, expired,
// our certificate refused, no certificate given).
absl::StatusOr<std::unique_ptr<AgentClient>> ConnectAgent(const std::string& address,
                                                          std::chrono::nanoseconds connect_timeout,
                                                          const AgentSecurity& security = {});

// One agent to connect to, and how.
struct AgentTarget {
  std::string address;
  AgentSecurity security;
};
struct ConnectedAgent {
  std::unique_ptr<AgentClient> client;
  v1::HostInfo info;
};
// Connects to every target at once and reads each one's host info (ConnectAgent's errors per
// target, or GetHostInfo's); results are parallel to `targets`. Costs about what the slowest
// agent costs, not the sum.
std::vector<absl::StatusOr<ConnectedAgent>> ConnectAgents(const std::vector<AgentTarget>& targets,
                                                          std::chrono::nanoseconds connect_timeout);

}  // namespace synq::controller
