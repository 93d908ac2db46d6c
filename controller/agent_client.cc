#include "controller/agent_client.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/limits.h"
#include "controller/run/fan_out.h"
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
// How often an agent sends the samples it kept: rare enough that a thousand agents cost the
// controller a few hundred small messages a second, often enough for the progress line.
constexpr nanoseconds kWatchBatchInterval = seconds(1);

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

// The Watch stream as a callback reactor: reads land on gRPC's callback threads, so a thousand
// streams cost no thread of their own. Batched messages are unpacked into their samples.
class GrpcWatch final : public WatchHandle, public grpc::ClientReadReactor<v1::Sample> {
 public:
  GrpcWatch(v1::AgentService::Stub& stub, const std::string& run_id, const std::string& token,
            std::function<void(const v1::Sample&)> on_sample, std::string address,
            nanoseconds timeout)
      : address_(std::move(address)), timeout_(timeout), on_sample_(std::move(on_sample)) {
    if (!token.empty()) context_.AddMetadata(kRunTokenMetadata, token);
    request_.set_run_id(run_id);
    proto::ToProto(kWatchBatchInterval, request_.mutable_batch_interval());
    SetDeadline(context_, timeout);
    stub.async()->Watch(&context_, &request_, this);
    StartRead(&sample_);
    StartCall();
  }
  ~GrpcWatch() override {
    context_.TryCancel();
    // gRPC calls OnDone once it is done with this reactor; only then may it go.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }
  // Bounded: an agent that stopped answering after EndRun must not hold the controller.
  absl::Status Wait() override {
    return WaitUntil(std::chrono::steady_clock::now() + kWatchEndWait);
  }
  absl::Status WaitUntil(std::chrono::steady_clock::time_point deadline) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_until(lock, deadline, [this] { return done_; })) {
      context_.TryCancel();
      cv_.wait(lock, [this] { return done_; });
      return absl::DeadlineExceededError(absl::StrCat("agent ", address_,
                                                      " did not end its Watch stream within ",
                                                      Seconds(kWatchEndWait), " of EndRun"));
    }
    return FromGrpc(status_, address_, "Watch", timeout_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the stream's status
    if (sample_.batch_size() > 0) {
      for (const v1::Sample& s : sample_.batch()) on_sample_(s);
    } else {
      on_sample_(sample_);
    }
    sample_.Clear();
    StartRead(&sample_);
  }
  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }

 private:
  std::string address_;
  nanoseconds timeout_;
  std::function<void(const v1::Sample&)> on_sample_;
  grpc::ClientContext context_;
  v1::WatchRequest request_;
  v1::Sample sample_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
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
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease_ = request.has_lease() ? proto::FromProto(request.lease()) : kDefaultLease;
    }
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
    nanoseconds lease{0};
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease = lease_;
    }
    return std::unique_ptr<WatchHandle>(std::make_unique<GrpcWatch>(
        *stub_, run_id, TokenOf(run_id), std::move(on_sample), address_, lease + kWatchMargin));
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

  void GetHostInfoAsync(Reply<v1::HostInfo> done) override {
    CallAsync<v1::HostInfo>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->GetHostInfo(c, q, r, std::move(f)); },
        v1::GetHostInfoRequest(), "GetHostInfo", kQuickCall, std::move(done));
  }
  void GetClockAsync(Reply<v1::GetClockResponse> done) override {
    CallAsync<v1::GetClockResponse>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->GetClock(c, q, r, std::move(f)); },
        v1::GetClockRequest(), "GetClock", kQuickCall, std::move(done));
  }
  void BeginRunAsync(const v1::BeginRunRequest& request, Done done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease_ = request.has_lease() ? proto::FromProto(request.lease()) : kDefaultLease;
    }
    CallAsync<v1::BeginRunResponse>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->BeginRun(c, q, r, std::move(f)); },
        request, "BeginRun", kSlowCall,
        [this, run_id = request.run_id(),
         done = std::move(done)](absl::StatusOr<v1::BeginRunResponse> begun) {
          if (begun.ok()) {
            std::lock_guard<std::mutex> lock(mu_);
            tokens_[run_id] = begun->run_token();
          }
          done(begun.status());
        });
  }
  void ApplySettingsAsync(const v1::ApplySettingsRequest& request,
                          Reply<v1::ApplySettingsResponse> done) override {
    CallAsync<v1::ApplySettingsResponse>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->ApplySettings(c, q, r, std::move(f)); },
        request, "ApplySettings", kQuickCall, std::move(done));
  }
  void ApplyShapingAsync(const v1::ApplyShapingRequest& request,
                         Reply<v1::ApplyShapingResponse> done) override {
    CallAsync<v1::ApplyShapingResponse>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->ApplyShaping(c, q, r, std::move(f)); },
        request, "ApplyShaping", kSlowCall, std::move(done));
  }
  void StartListenerAsync(const v1::StartListenerRequest& request,
                          Reply<v1::StartListenerResponse> done) override {
    CallAsync<v1::StartListenerResponse>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->StartListener(c, q, r, std::move(f)); },
        request, "StartListener", kQuickCall, std::move(done));
  }
  void ObserveListenerAsync(const v1::ObserveListenerRequest& request,
                            Reply<v1::StartListenerResponse> done) override {
    CallAsync<v1::StartListenerResponse>([](auto* a, auto* c, auto* q, auto* r,
                                            auto f) { a->ObserveListener(c, q, r, std::move(f)); },
                                         request, "ObserveListener", kQuickCall, std::move(done));
  }
  void StartCaptureAsync(const v1::StartCaptureRequest& request,
                         Reply<v1::StartCaptureResponse> done) override {
    CallAsync<v1::StartCaptureResponse>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->StartCapture(c, q, r, std::move(f)); },
        request, "StartCapture", kQuickCall, std::move(done));
  }
  void StartFloodsAsync(const v1::StartFloodsRequest& request, Done done) override {
    CallAsync<v1::StartFloodsResponse>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->StartFloods(c, q, r, std::move(f)); },
        request, "StartFloods", kQuickCall,
        [done = std::move(done)](absl::StatusOr<v1::StartFloodsResponse> r) { done(r.status()); });
  }
  void CollectResultsAsync(const std::string& run_id, std::chrono::nanoseconds timeout,
                           bool wait_only, Reply<v1::CollectResultsResponse> done) override {
    v1::CollectResultsRequest request;
    request.set_run_id(run_id);
    request.set_wait_only(wait_only);
    CallAsync<v1::CollectResultsResponse>([](auto* a, auto* c, auto* q, auto* r,
                                             auto f) { a->CollectResults(c, q, r, std::move(f)); },
                                          request, "CollectResults", timeout, std::move(done));
  }
  void EndRunAsync(const std::string& run_id, Reply<v1::EndRunResponse> done) override {
    v1::EndRunRequest request;
    request.set_run_id(run_id);
    CallAsync<v1::EndRunResponse>(
        [](auto* a, auto* c, auto* q, auto* r, auto f) { a->EndRun(c, q, r, std::move(f)); },
        request, "EndRun", kSlowCall, std::move(done));
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

  // One unary call on gRPC's callback API: the context, request and response live in one heap
  // block that the completion callback owns, so nothing waits and nothing outlives the call.
  // `invoke(async_stub, context, request, response, on_done)` names the method.
  template <typename Response, typename Request, typename Invoke>
  void CallAsync(Invoke invoke, const Request& request, const char* name, nanoseconds timeout,
                 Reply<Response> done) {
    struct Pending {
      grpc::ClientContext context;
      Request request;
      Response response;
    };
    auto pending = std::make_shared<Pending>();
    pending->request = request;
    SetDeadline(pending->context, timeout);
    if constexpr (requires { request.run_id(); }) {
      if (std::string token = TokenOf(request.run_id()); !token.empty()) {
        pending->context.AddMetadata(kRunTokenMetadata, token);
      }
    }
    invoke(stub_->async(), &pending->context, &pending->request, &pending->response,
           std::function<void(grpc::Status)>([pending, done = std::move(done), address = address_,
                                              name, timeout](const grpc::Status& status) mutable {
             absl::StatusOr<Response> reply =
                 status.ok() ? absl::StatusOr<Response>(std::move(pending->response))
                             : FromGrpc(status, address, name, timeout);
             // The context goes before `done` runs: it holds a reference to the channel, and
             // once `done` has run the phase may close the channel (hosts->clear()); the last
             // reference must not be dropped later on this gRPC thread.
             pending.reset();
             done(std::move(reply));
           }));
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

namespace {

// A channel asked to connect at once (GetState(true)); connecting goes on in the background.
std::shared_ptr<grpc::Channel> OpenChannel(const std::string& address,
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
  channel->GetState(true);
  return channel;
}

// Waits until `channel` is ready, up to `deadline`.
absl::StatusOr<std::unique_ptr<AgentClient>> AwaitChannel(
    const std::string& address, const AgentSecurity& security,
    std::shared_ptr<grpc::Channel> channel, std::chrono::system_clock::time_point deadline,
    std::chrono::nanoseconds connect_timeout) {
  // The first failed attempt on a TCP agent is looked at with a handshake of our own: a TLS
  // problem (wrong CA, wrong name, expired, no certificate) will not heal by waiting.
  bool explained = absl::StartsWith(address, "unix:");
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

std::chrono::system_clock::time_point DeadlineAfter(std::chrono::nanoseconds timeout) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout);
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentClient>> ConnectAgent(const std::string& address,
                                                          std::chrono::nanoseconds connect_timeout,
                                                          const AgentSecurity& security) {
  return AwaitChannel(address, security, OpenChannel(address, security),
                      DeadlineAfter(connect_timeout), connect_timeout);
}

std::vector<absl::StatusOr<ConnectedAgent>> ConnectAgents(
    const std::vector<AgentTarget>& targets, std::chrono::nanoseconds connect_timeout) {
  // Every channel connects in the background at once; waiting for them in turn then costs the
  // slowest one, not the sum.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  channels.reserve(targets.size());
  for (const AgentTarget& t : targets) channels.push_back(OpenChannel(t.address, t.security));
  const auto deadline = DeadlineAfter(connect_timeout);
  std::vector<absl::StatusOr<ConnectedAgent>> out;
  out.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    auto client = AwaitChannel(targets[i].address, targets[i].security, std::move(channels[i]),
                               deadline, connect_timeout);
    if (!client.ok()) {
      out.push_back(client.status());
      continue;
    }
    ConnectedAgent connected;
    connected.client = *std::move(client);
    out.push_back(std::move(connected));
  }
  // Host info from every connected agent at once.
  Countdown pending(targets.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (!out[i].ok()) {
      pending.Done();
      continue;
    }
    out[i]->client->GetHostInfoAsync([&out, &pending, i](absl::StatusOr<v1::HostInfo> info) {
      if (info.ok()) {
        out[i]->info = *std::move(info);
      } else {
        out[i] = info.status();
      }
      pending.Done();
    });
  }
  pending.Wait();
  return out;
}

}  // namespace synq::controller
