#include "controller/agent_client.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "grpcpp/grpcpp.h"
#include "synq/agent/v1/agent.grpc.pb.h"

namespace synq::controller {
namespace {

constexpr auto kCallTimeout = std::chrono::seconds(30);
// The agent's metadata key for a run's token (agent/service/caller.h).
constexpr char kRunTokenMetadata[] = "synq-run-token";

absl::Status FromGrpc(const grpc::Status& status, const std::string& address, const char* rpc) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("agent ", address, ": ", rpc, ": ", status.error_message()));
}

void SetDeadline(grpc::ClientContext& context, std::chrono::nanoseconds timeout = kCallTimeout) {
  // Capped: now() + a saturated budget would wrap into the past and fail the call at once.
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::min(timeout, common::kMaxLease)));
}

class GrpcWatch final : public WatchHandle {
 public:
  GrpcWatch(v1::AgentService::Stub& stub, const std::string& run_id, const std::string& token,
            std::function<void(const v1::Sample&)> on_sample, std::string address)
      : address_(std::move(address)) {
    if (!token.empty()) context_.AddMetadata(kRunTokenMetadata, token);
    v1::WatchRequest request;
    request.set_run_id(run_id);
    reader_ = stub.Watch(&context_, request);
    thread_ = std::thread([this, on_sample = std::move(on_sample)] {
      v1::Sample sample;
      while (reader_->Read(&sample)) on_sample(sample);
      status_ = reader_->Finish();
    });
  }
  ~GrpcWatch() override {
    context_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }
  absl::Status Wait() override {
    if (thread_.joinable()) thread_.join();
    return FromGrpc(status_, address_, "Watch");
  }

 private:
  std::string address_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::Sample>> reader_;
  grpc::Status status_;
  std::thread thread_;
};

class GrpcAgentClient final : public AgentClient {
 public:
  GrpcAgentClient(std::string address, std::shared_ptr<grpc::Channel> channel)
      : address_(std::move(address)), stub_(v1::AgentService::NewStub(channel)) {}

  const std::string& address() const override { return address_; }

  absl::StatusOr<v1::HostInfo> GetHostInfo() override {
    return Call<v1::HostInfo>(&v1::AgentService::Stub::GetHostInfo, v1::GetHostInfoRequest(),
                              "GetHostInfo");
  }
  absl::StatusOr<v1::GetClockResponse> GetClock() override {
    return Call<v1::GetClockResponse>(&v1::AgentService::Stub::GetClock, v1::GetClockRequest(),
                                      "GetClock");
  }
  absl::Status BeginRun(const v1::BeginRunRequest& request) override {
    auto begun = Call<v1::BeginRunResponse>(&v1::AgentService::Stub::BeginRun, request, "BeginRun");
    if (!begun.ok()) return begun.status();
    std::lock_guard<std::mutex> lock(mu_);
    tokens_[request.run_id()] = begun->run_token();
    return absl::OkStatus();
  }
  absl::StatusOr<v1::ApplySettingsResponse> ApplySettings(
      const v1::ApplySettingsRequest& request) override {
    return Call<v1::ApplySettingsResponse>(&v1::AgentService::Stub::ApplySettings, request,
                                           "ApplySettings");
  }
  absl::StatusOr<v1::ApplyShapingResponse> ApplyShaping(
      const v1::ApplyShapingRequest& request) override {
    return Call<v1::ApplyShapingResponse>(&v1::AgentService::Stub::ApplyShaping, request,
                                          "ApplyShaping");
  }
  absl::StatusOr<v1::StartListenerResponse> StartListener(
      const v1::StartListenerRequest& request) override {
    return Call<v1::StartListenerResponse>(&v1::AgentService::Stub::StartListener, request,
                                           "StartListener");
  }
  absl::StatusOr<v1::StartListenerResponse> ObserveListener(
      const v1::ObserveListenerRequest& request) override {
    return Call<v1::StartListenerResponse>(&v1::AgentService::Stub::ObserveListener, request,
                                           "ObserveListener");
  }
  absl::StatusOr<v1::StartCaptureResponse> StartCapture(
      const v1::StartCaptureRequest& request) override {
    return Call<v1::StartCaptureResponse>(&v1::AgentService::Stub::StartCapture, request,
                                          "StartCapture");
  }
  absl::Status StartFloods(const v1::StartFloodsRequest& request) override {
    return Call<v1::StartFloodsResponse>(&v1::AgentService::Stub::StartFloods, request,
                                         "StartFloods")
        .status();
  }
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(
      const std::string& run_id, std::function<void(const v1::Sample&)> on_sample) override {
    return std::unique_ptr<WatchHandle>(std::make_unique<GrpcWatch>(
        *stub_, run_id, TokenOf(run_id), std::move(on_sample), address_));
  }
  absl::StatusOr<v1::CollectResultsResponse> CollectResults(const std::string& run_id,
                                                            std::chrono::nanoseconds timeout,
                                                            bool wait_only) override {
    v1::CollectResultsRequest request;
    request.set_run_id(run_id);
    request.set_wait_only(wait_only);
    return Call<v1::CollectResultsResponse>(&v1::AgentService::Stub::CollectResults, request,
                                            "CollectResults", timeout);
  }
  absl::StatusOr<v1::EndRunResponse> EndRun(const std::string& run_id) override {
    v1::EndRunRequest request;
    request.set_run_id(run_id);
    return Call<v1::EndRunResponse>(&v1::AgentService::Stub::EndRun, request, "EndRun");
  }

 private:
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request, const char* name,
                                std::chrono::nanoseconds timeout = kCallTimeout) {
    grpc::ClientContext context;
    SetDeadline(context, timeout);
    // Every call of a run proves it comes from the caller that began it.
    if constexpr (requires { request.run_id(); }) {
      if (std::string token = TokenOf(request.run_id()); !token.empty()) {
        context.AddMetadata(kRunTokenMetadata, token);
      }
    }
    Response response;
    grpc::Status status = ((*stub_).*method)(&context, request, &response);
    if (!status.ok()) return FromGrpc(status, address_, name);
    return response;
  }

  std::string TokenOf(const std::string& run_id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(run_id);
    return it == tokens_.end() ? "" : it->second;
  }

  std::string address_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  std::mutex mu_;
  std::map<std::string, std::string> tokens_;  // run id -> the token its BeginRun returned
};

}  // namespace

absl::StatusOr<AgentSecurity> LoadAgentSecurity(const common::TlsFileSet& files,
                                                std::string server_name) {
  AgentSecurity security;
  security.files = files;
  security.server_name = std::move(server_name);
  if (files.empty()) return security;
  auto material = common::LoadTlsFiles(files);
  if (!material.ok()) return material.status();
  security.tls = *std::move(material);
  return security;
}

namespace {

// Why a channel to a TCP agent did not open, as well as a TLS handshake of our own can tell.
std::string ExplainFailedChannel(const std::string& address, const AgentSecurity& security,
                                 std::chrono::milliseconds timeout) {
  if (security.tls.has_value()) {
    absl::Status why = common::DiagnoseTlsHandshake(address, security.server_name, *security.tls,
                                                    security.files, timeout);
    if (!why.ok()) return std::string(why.message());
    return "";
  }
  if (common::ServesTls(address, timeout)) {
    return absl::StrCat("agent ", address,
                        " requires mutual TLS: give --tls-cert, --tls-key and --tls-ca (or a "
                        "tls: block in the scenario's host) with a certificate its CA signed");
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentClient>> ConnectAgent(const std::string& address,
                                                          std::chrono::nanoseconds connect_timeout,
                                                          const AgentSecurity& security) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetMaxReceiveMessageSize(256 * 1024 * 1024);
  const bool local = absl::StartsWith(address, "unix:");
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (security.tls.has_value() && !local) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = security.tls->ca_pem;
    options.pem_private_key = security.tls->key_pem;
    options.pem_cert_chain = security.tls->cert_pem;
    credentials = grpc::SslCredentials(options);
    if (!security.server_name.empty()) args.SetSslTargetNameOverride(security.server_name);
  }
  auto channel = grpc::CreateCustomChannel(address, credentials, args);
  const auto deadline =
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(connect_timeout);
  // The first failed attempt on a TCP agent is looked at with a handshake of our own: a TLS
  // problem (wrong CA, wrong name, expired, no certificate) will not heal by waiting.
  bool explained = local;
  for (grpc_connectivity_state state = channel->GetState(true); state != GRPC_CHANNEL_READY;
       state = channel->GetState(true)) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE && !explained) {
      explained = true;
      const std::string why = ExplainFailedChannel(address, security, std::chrono::seconds(3));
      if (!why.empty()) return absl::UnavailableError(why);
    }
    if (!channel->WaitForStateChange(state, deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "agent ", address, " is unreachable (no connection within ",
          std::chrono::duration_cast<std::chrono::milliseconds>(connect_timeout).count(), " ms)"));
    }
  }
  return std::unique_ptr<AgentClient>(std::make_unique<GrpcAgentClient>(address, channel));
}

}  // namespace synq::controller
