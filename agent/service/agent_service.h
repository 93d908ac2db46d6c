// The gRPC face of the agent (callback API): converts protos to data-plane calls on RunManager.
#pragma once

#include <string>

#include "agent/access_policy.h"
#include "agent/host_facts.h"
#include "agent/run/run_session.h"
#include "common/labels.h"
#include "synq/agent/v1/agent.grpc.pb.h"

namespace synq::agent {

class AgentServiceImpl final : public synq::agent::v1::AgentService::CallbackService {
 public:
  // `policy`: the flood targets allowed and whether the agent serves insecurely. `labels`: what
  // host info reports as the agent's labels (--label). Probes the host's costly capabilities
  // (netem, nfqueue, io_uring) here, once.
  explicit AgentServiceImpl(RunManager& runs, AccessPolicy policy = {}, common::Labels labels = {})
      : runs_(runs), policy_(std::move(policy)), labels_(std::move(labels)) {
    ProbeCostlyHostFactsOnce();
  }

  grpc::ServerUnaryReactor* GetHostInfo(grpc::CallbackServerContext* context,
                                        const v1::GetHostInfoRequest* request,
                                        v1::HostInfo* response) override;
  grpc::ServerUnaryReactor* GetClock(grpc::CallbackServerContext* context,
                                     const v1::GetClockRequest* request,
                                     v1::GetClockResponse* response) override;
  grpc::ServerUnaryReactor* BeginRun(grpc::CallbackServerContext* context,
                                     const v1::BeginRunRequest* request,
                                     v1::BeginRunResponse* response) override;
  grpc::ServerUnaryReactor* ApplySettings(grpc::CallbackServerContext* context,
                                          const v1::ApplySettingsRequest* request,
                                          v1::ApplySettingsResponse* response) override;
  grpc::ServerUnaryReactor* RestoreSettings(grpc::CallbackServerContext* context,
                                            const v1::RestoreSettingsRequest* request,
                                            v1::RestoreSettingsResponse* response) override;
  grpc::ServerUnaryReactor* ApplyShaping(grpc::CallbackServerContext* context,
                                         const v1::ApplyShapingRequest* request,
                                         v1::ApplyShapingResponse* response) override;
  grpc::ServerUnaryReactor* StartListener(grpc::CallbackServerContext* context,
                                          const v1::StartListenerRequest* request,
                                          v1::StartListenerResponse* response) override;
  grpc::ServerUnaryReactor* ObserveListener(grpc::CallbackServerContext* context,
                                            const v1::ObserveListenerRequest* request,
                                            v1::StartListenerResponse* response) override;
  grpc::ServerUnaryReactor* StopListener(grpc::CallbackServerContext* context,
                                         const v1::StopListenerRequest* request,
                                         v1::StopListenerResponse* response) override;
  grpc::ServerUnaryReactor* StartCapture(grpc::CallbackServerContext* context,
                                         const v1::StartCaptureRequest* request,
                                         v1::StartCaptureResponse* response) override;
  grpc::ServerUnaryReactor* StartFloods(grpc::CallbackServerContext* context,
                                        const v1::StartFloodsRequest* request,
                                        v1::StartFloodsResponse* response) override;
  grpc::ServerWriteReactor<v1::Sample>* Watch(grpc::CallbackServerContext* context,
                                              const v1::WatchRequest* request) override;
  grpc::ServerUnaryReactor* CollectResults(grpc::CallbackServerContext* context,
                                           const v1::CollectResultsRequest* request,
                                           v1::CollectResultsResponse* response) override;
  grpc::ServerUnaryReactor* EndRun(grpc::CallbackServerContext* context,
                                   const v1::EndRunRequest* request,
                                   v1::EndRunResponse* response) override;

 private:
  RunManager& runs_;
  const AccessPolicy policy_;
  const common::Labels labels_;
};

// absl::StatusCode -> grpc::StatusCode, one to one.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace synq::agent
