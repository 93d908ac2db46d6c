#include "controller/agent_client.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/limits.h"
#include "grpcpp/grpcpp.h"
#include "proto/proto_time.h"
#include "synq/agent/v1/agent.grpc.pb.h"

namespace synq::controller {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;
// The agent's metadata key for a run's token (agent/service/caller.h).
constexpr char kRunTokenMetadata[] = "synq-run-token";

// Deadlines of the unary calls. An agent answers these from memory or after a few syscalls
// (a listener, a sysctl write and its read-back, a clock read): 10 s is two orders of magnitude
// above what they take on a loaded 2-core machine, and short enough that a frozen agent fails
// its host quickly. Shaping runs tc/iptables subprocesses (each can wait for the xtables lock),
// BeginRun may wait for the previous run's teardown and EndRun restores settings and joins the
// floods' threads and worker processes: those get 30 s.
constexpr nanoseconds kQuickCall = seconds(10);
constexpr nanoseconds kSlowCall = seconds(30);
// A Watch stream lives as long as the run; the agent ends the run at its lease at the latest,
// so the stream gets the lease plus this margin (the controller's lease covers every flood).
constexpr nanoseconds kWatchMargin = seconds(60);
constexpr nanoseconds kDefaultLease = std::chrono::minutes(10);
// After EndRun the stream ends at once; Wait() gives it this long before cancelling it.
constexpr nanoseconds kWatchEndWait = seconds(10);

std::string Seconds(nanoseconds d) {
  return absl::StrFormat("%.3g s", std::chrono::duration<double>(d).count());
}

// A call past its deadline says which agent did not answer which call within how long (the
// phase adds where in the run); other errors keep the agent's own message.
absl::Status FromGrpc(const grpc::Status& status, const std::string& address, const char* rpc,
                      nanoseconds timeout) {
  if (status.ok()) return absl::OkStatus();
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(
        absl::StrCat("agent ", address, " did not answer ", rpc, " within ", Seconds(timeout)));
  }
  // gRPC closes a connection whose pings go unanswered (GRPC_ARG_KEEPALIVE_TIMEOUT_MS): the
  // agent stopped answering as surely as past a deadline, and may do so first.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      absl::StrContains(status.error_message(), "keepalive")) {
    return absl::DeadlineExceededError(absl::StrCat("agent ", address, " did not answer ", rpc,
                                                    ": it stopped answering pings (",
                                                    status.error_message(), ")"));
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("agent ", address, ": ", rpc, ": ", status.error_message()));
}

void SetDeadline(grpc::ClientContext& context, nanoseconds timeout) {
  // Capped: now() + a saturated budget would wrap into the past and fail the call at once.
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::min(timeout, common::kMaxLease)));
}

class GrpcWatch final : public WatchHandle {
 public:
  GrpcWatch(v1::AgentService::Stub& stub, const std::string& run_id, const std::string& token,
            std::function<void(const v1::Sample&)> on_sample, std::string address,
            nanoseconds timeout)
      : address_(std::move(address)), timeout_(timeout) {
    if (!token.empty()) context_.AddMetadata(kRunTokenMetadata, token);
    v1::WatchRequest request;
    request.set_run_id(run_id);
    SetDeadline(context_, timeout);
    reader_ = stub.Watch(&context_, request);
    thread_ = std::thread([this, on_sample = std::move(on_sample)] {
      v1::Sample sample;
      while (reader_->Read(&sample)) on_sample(sample);
      grpc::Status status = reader_->Finish();
      std::lock_guard<std::mutex> lock(mu_);
      status_ = std::move(status);
      done_ = true;
      cv_.notify_all();
    });
  }
  ~GrpcWatch() override {
    context_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }
  // Bounded: an agent that stopped answering after EndRun must not hold the controller.
  absl::Status Wait() override {
    bool done = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      done = cv_.wait_for(lock, kWatchEndWait, [this] { return done_; });
    }
    if (!done) context_.TryCancel();
    if (thread_.joinable()) thread_.join();
    if (!done) {
      return absl::DeadlineExceededError(absl::StrCat("agent ", address_,
                                                      " did not end its Watch stream within ",
                                                      Seconds(kWatchEndWait), " of EndRun"));
    }
    return FromGrpc(status_, address_, "Watch", timeout_);
  }

 private:
  std::string address_;
  nanoseconds timeout_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::Sample>> reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
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
                              "GetHostInfo", kQuickCall);
  }
  absl::StatusOr<v1::GetClockResponse> GetClock() override {
    return Call<v1::GetClockResponse>(&v1::AgentService::Stub::GetClock, v1::GetClockRequest(),
                                      "GetClock", kQuickCall);
  }
  absl::Status BeginRun(const v1::BeginRunRequest& request) override {
    lease_ = request.has_lease() ? proto::FromProto(request.lease()) : kDefaultLease;
    auto begun = Call<v1::BeginRunResponse>(&v1::AgentService::Stub::BeginRun, request, "BeginRun",
                                            kSlowCall);
    if (!begun.ok()) return begun.status();
    std::lock_guard<std::mutex> lock(mu_);
    tokens_[request.run_id()] = begun->run_token();
    return absl::OkStatus();
  }
  absl::StatusOr<v1::ApplySettingsResponse> ApplySettings(
      const v1::ApplySettingsRequest& request) override {
    return Call<v1::ApplySettingsResponse>(&v1::AgentService::Stub::ApplySettings, request,
                                           "ApplySettings", kQuickCall);
  }
  absl::StatusOr<v1::ApplyShapingResponse> ApplyShaping(
      const v1::ApplyShapingRequest& request) override {
    return Call<v1::ApplyShapingResponse>(&v1::AgentService::Stub::ApplyShaping, request,
                                          "ApplyShaping", kSlowCall);
  }
  absl::StatusOr<v1::StartListenerResponse> StartListener(
      const v1::StartListenerRequest& request) override {
    return Call<v1::StartListenerResponse>(&v1::AgentService::Stub::StartListener, request,
                                           "StartListener", kQuickCall);
  }
  absl::StatusOr<v1::StartListenerResponse> ObserveListener(
      const v1::ObserveListenerRequest& request) override {
    return Call<v1::StartListenerResponse>(&v1::AgentService::Stub::ObserveListener, request,
                                           "ObserveListener", kQuickCall);
  }
  absl::StatusOr<v1::StartCaptureResponse> StartCapture(
      const v1::StartCaptureRequest& request) override {
    return Call<v1::StartCaptureResponse>(&v1::AgentService::Stub::StartCapture, request,
                                          "StartCapture", kQuickCall);
  }
  absl::Status StartFloods(const v1::StartFloodsRequest& request) override {
    return Call<v1::StartFloodsResponse>(&v1::AgentService::Stub::StartFloods, request,
                                         "StartFloods", kQuickCall)
        .status();
  }
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(
      const std::string& run_id, std::function<void(const v1::Sample&)> on_sample) override {
    return std::unique_ptr<WatchHandle>(std::make_unique<GrpcWatch>(
        *stub_, run_id, TokenOf(run_id), std::move(on_sample), address_, lease_ + kWatchMargin));
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
    return Call<v1::EndRunResponse>(&v1::AgentService::Stub::EndRun, request, "EndRun", kSlowCall);
  }

 private:
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request, const char* name,
                                nanoseconds timeout) {
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
    if (!status.ok()) return FromGrpc(status, address_, name, timeout);
    return response;
  }

  std::string TokenOf(const std::string& run_id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(run_id);
    return it == tokens_.end() ? "" : it->second;
  }

  std::string address_;
  nanoseconds lease_ = kDefaultLease;  // of the last BeginRun: bounds the Watch stream
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
