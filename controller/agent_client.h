// The controller's view of one agent: an interface (so orchestration can be tested with fakes)
// and its gRPC implementation.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "synq/agent/v1/agent.pb.h"

namespace synq::controller {

namespace v1 = ::synq::agent::v1;

// A live Watch stream; destroying it cancels the stream (which makes the agent end the run).
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
  // Waits for the stream to end (after EndRun) and returns how it ended.
  virtual absl::Status Wait() = 0;
};

class AgentClient {
 public:
  virtual ~AgentClient() = default;
  virtual const std::string& address() const = 0;

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
  // Calls `on_sample` from a stream thread for each sample until the run ends.
  virtual absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(
      const std::string& run_id, std::function<void(const v1::Sample&)> on_sample) = 0;
  // Waits for the run's floods to finish (up to `timeout`); with `wait_only` returns nothing else.
  virtual absl::StatusOr<v1::CollectResultsResponse> CollectResults(
      const std::string& run_id, std::chrono::nanoseconds timeout, bool wait_only = false) = 0;
  virtual absl::StatusOr<v1::EndRunResponse> EndRun(const std::string& run_id) = 0;
};

// Connects to "host:port" or "unix:/path". Waits up to `connect_timeout` for the channel;
// an unreachable agent is Unavailable naming the address.
absl::StatusOr<std::unique_ptr<AgentClient>> ConnectAgent(const std::string& address,
                                                          std::chrono::nanoseconds connect_timeout);

}  // namespace synq::controller
