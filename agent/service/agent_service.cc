#include "agent/service/agent_service.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/flood_proto.h"
#include "agent/host_facts.h"
#include "agent/service/caller.h"
#include "agent/service/requests.h"
#include "proto/proto_enums.h"
#include "proto/proto_time.h"
#include "spdlog/spdlog.h"

namespace synq::agent {

namespace v1 = ::synq::agent::v1;
using proto::FromProto;
using proto::ToProto;

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share their numbering by design.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

namespace {

using proto::FromProto;
using proto::ToProto;

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

v1::Capability ToProto(Capability c) {
  switch (c) {
    case Capability::kIoUring:
      return v1::CAPABILITY_IO_URING;
    case Capability::kSockDiag:
      return v1::CAPABILITY_SOCK_DIAG;
    case Capability::kSysctlWrite:
      return v1::CAPABILITY_SYSCTL_WRITE;
    case Capability::kNetem:
      return v1::CAPABILITY_NETEM;
    case Capability::kNfqueue:
      return v1::CAPABILITY_NFQUEUE;
    case Capability::kPcap:
      return v1::CAPABILITY_PCAP;
    case Capability::kTracefs:
      return v1::CAPABILITY_TRACEFS;
  }
  return v1::CAPABILITY_UNSPECIFIED;
}

void AddSettings(const std::map<std::string, int64_t>& settings,
                 google::protobuf::RepeatedPtrField<v1::Setting>* out) {
  for (const auto& [key, value] : settings) {
    auto* s = out->Add();
    s->set_key(key);
    s->set_value(value);
  }
}

void ToProto(const ListenerSnapshot& l, v1::ListenerInfo* out) {
  out->set_name(l.name);
  out->set_address(l.address);
  out->set_ip(l.ip);
  out->set_port(l.port);
  out->set_backlog(l.backlog);
  out->set_backlog_effective(l.backlog_effective);
  out->set_accepted(l.accepted);
  out->set_accept_queue_peak(l.accept_queue_peak);
  out->set_observed(l.observed);
  out->set_owner(l.owner);
}

void ToProto(const common::Counters& counters,
             google::protobuf::RepeatedPtrField<v1::Counter>* out) {
  for (const auto& [name, value] : counters) {
    auto* c = out->Add();
    c->set_name(name);
    c->set_value(value);
  }
}

void ToProto(const SampleValue& s, v1::Sample* out) {
  ToProto(s.at, out->mutable_at());
  for (const auto& l : s.listeners) {
    auto* ls = out->add_listeners();
    ls->set_name(l.name);
    ls->set_accept_queue(l.queue.accept_queue);
    ls->set_accept_queue_max(l.queue.accept_queue_max);
    ls->set_syn_recv(l.queue.syn_recv);
  }
  ToProto(s.counter_deltas, out->mutable_counter_deltas());
}

void ToProto(const PacketCounts& c, v1::PacketCounts* out) {
  out->set_syn(c.syn);
  out->set_syn_retransmit(c.syn_retransmit);
  out->set_synack(c.synack);
  out->set_synack_retransmit(c.synack_retransmit);
  out->set_pure_ack(c.pure_ack);
  out->set_rst(c.rst);
  out->set_fin(c.fin);
  out->set_data(c.data);
  out->set_total(c.total);
}

// The capture's counts, and the pcap itself when it is small enough to ship in one message.
void ToProto(const CollectedRun& run, v1::CaptureResult* out) {
  out->set_interface(run.capture_interface);
  if (!run.capture.has_value()) {
    out->set_error(run.capture_error);
    return;
  }
  const CaptureSummary& c = *run.capture;
  out->set_agent_file(c.file);
  ToProto(c.to_server, out->mutable_to_server());
  ToProto(c.from_server, out->mutable_from_server());
  out->set_dropped_by_kernel(c.dropped_by_kernel);
  std::error_code ec;
  if (std::filesystem::file_size(c.file, ec) <= kMaxShippedCapture && !ec) {
    std::ifstream in(c.file, std::ios::binary);
    out->mutable_pcap()->assign(std::istreambuf_iterator<char>(in), {});
  }
}

// Streams samples of the open run until it ends or the controller goes away. A broken stream
// while the run is open means the controller is gone: the run is abandoned and restored.
// The run manager calls back into shared State, never into the reactor directly: a callback may
// still be on its way when gRPC calls OnDone, and State outlives the reactor.
// Samples per batched message at most (a sample is well under 4 KiB: a batch stays far below
// gRPC's message limits).
constexpr int kMaxBatch = 1000;

class WatchReactor final : public grpc::ServerWriteReactor<v1::Sample> {
 public:
  // `batch_interval` > 0: samples are kept and sent in batches at most that often (see
  // WatchRequest.batch_interval), and what is left when the run ends.
  WatchReactor(RunManager& runs, Caller caller, std::string run_id,
               std::chrono::nanoseconds batch_interval)
      : runs_(runs),
        caller_(std::move(caller)),
        run_id_(std::move(run_id)),
        state_(std::make_shared<State>()) {
    state_->reactor = this;
    state_->batch_interval = batch_interval;
    state_->last_batch = std::chrono::steady_clock::now();
  }

  void Subscribe() {
    std::shared_ptr<State> state = state_;
    auto id = runs_.Subscribe(
        caller_, run_id_, [state](const SampleValue& s) { state->Push(s); },
        [state] { state->EndOfRun(); });
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!id.ok()) {
      state_->FinishLocked(ToGrpcStatus(id.status()));
      return;
    }
    state_->sink_id = *id;
  }

  // Ends the stream at once with `status` (a bad request): nothing was subscribed.
  void Refuse(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->FinishLocked(status);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->writing = false;
    if (!ok) return;  // OnCancel follows
    if (!state_->queue.empty()) state_->queue.pop_front();
    state_->MaybeWriteLocked();
  }

  void OnCancel() override {
    uint64_t sink = 0;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      sink = state_->sink_id;
      state_->FinishLocked(grpc::Status::CANCELLED);
    }
    // Only the owner's stream (it subscribed) ends the run when it breaks: anyone else's
    // cancelled Watch was refused and ends nothing.
    if (sink != 0) {
      runs_.Unsubscribe(sink);
      runs_.Abandon(run_id_, "the controller's watch stream broke");
    }
  }

  void OnDone() override {
    uint64_t sink = 0;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      sink = state_->sink_id;
      state_->reactor = nullptr;  // callbacks still in flight now find no reactor
    }
    if (sink != 0) runs_.Unsubscribe(sink);
    delete this;
  }

 private:
  struct State {
    std::mutex mu;
    WatchReactor* reactor = nullptr;  // null once gRPC is done with the stream
    std::deque<v1::Sample> queue;     // front() is being written while `writing`
    uint64_t sink_id = 0;
    bool writing = false;
    bool finished = false;
    bool run_ended = false;
    // Batched streams: the samples taken since the last message, and when that was sent.
    std::chrono::nanoseconds batch_interval{0};
    v1::Sample batch;
    std::chrono::steady_clock::time_point last_batch;

    void Push(const SampleValue& s) {
      std::lock_guard<std::mutex> lock(mu);
      if (finished || reactor == nullptr) return;
      if (batch_interval.count() <= 0) {
        ToProto(s, &queue.emplace_back());
        MaybeWriteLocked();
        return;
      }
      ToProto(s, batch.add_batch());
      const auto now = std::chrono::steady_clock::now();
      // Also a bound on one message: a fast sampler fills a batch long before the interval.
      if (now - last_batch >= batch_interval || batch.batch_size() >= kMaxBatch) {
        last_batch = now;
        queue.push_back(std::move(batch));
        batch.Clear();
        MaybeWriteLocked();
      }
    }
    void EndOfRun() {
      std::lock_guard<std::mutex> lock(mu);
      run_ended = true;
      // The samples not sent yet go before the end of the stream.
      if (batch.batch_size() > 0 && !finished && reactor != nullptr) {
        queue.push_back(std::move(batch));
        batch.Clear();
      }
      MaybeWriteLocked();
    }
    void MaybeWriteLocked() {
      if (reactor == nullptr || finished || writing) return;
      if (queue.empty()) {
        if (run_ended) FinishLocked(grpc::Status::OK);
        return;
      }
      writing = true;
      reactor->StartWrite(&queue.front());
    }
    void FinishLocked(const grpc::Status& status) {
      if (finished || reactor == nullptr) return;
      finished = true;
      reactor->Finish(status);
    }
  };

  RunManager& runs_;
  const Caller caller_;
  const std::string run_id_;
  std::shared_ptr<State> state_;
};

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::GetHostInfo(grpc::CallbackServerContext* context,
                                                        const v1::GetHostInfoRequest*,
                                                        v1::HostInfo* response) {
  const HostFacts facts = ProbeHostFacts(runs_.paths().proc_sys_dir);
  response->set_hostname(facts.hostname);
  response->set_kernel_release(facts.kernel_release);
  response->set_agent_version(SYNQ_VERSION);
  AddSettings(facts.settings, response->mutable_settings());
  for (Capability c : facts.capabilities) response->add_capabilities(ToProto(c));
  for (const auto& [c, why] : facts.missing) {
    auto* m = response->add_missing_capabilities();
    m->set_capability(ToProto(c));
    m->set_reason(why);
  }
  for (const auto& a : facts.addresses) response->add_addresses(a);
  response->set_fd_limit_soft(facts.fd_limit_soft);
  response->set_fd_limit_hard(facts.fd_limit_hard);
  response->set_insecure(policy_.insecure);
  for (auto& cidr : policy_.targets.EffectiveStrings()) response->add_allow_targets(cidr);
  for (const SettingDef& def : AllowedSettings()) {
    v1::SettingRange* range = response->add_setting_catalog();
    range->set_key(def.key);
    range->set_min(def.min);
    range->set_max(def.max);
  }
  response->set_restore_error(runs_.refusal());
  response->set_caller_identity(PeerIdentity(*context));
  const FloodEngineChoice engine = ProcessFloodEngine();
  response->set_flood_engine(FloodEngineName(engine.engine));
  response->set_flood_engine_note(engine.note);
  response->mutable_labels()->insert(labels_.begin(), labels_.end());
  response->set_armed_start(true);
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AgentServiceImpl::GetClock(grpc::CallbackServerContext* context,
                                                     const v1::GetClockRequest*,
                                                     v1::GetClockResponse* response) {
  ToProto(std::chrono::system_clock::now(), response->mutable_now());
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AgentServiceImpl::BeginRun(grpc::CallbackServerContext* context,
                                                     const v1::BeginRunRequest* request,
                                                     v1::BeginRunResponse* response) {
  absl::StatusOr<BeginRunSpec> begin = ToBeginRun(*request);
  if (!begin.ok()) return Done(context, begin.status());
  auto* reactor = context->DefaultReactor();
  // Answers at once, or from a manager thread once the previous run's teardown is done.
  runs_.Begin(CallerOf(*context), request->run_id(), begin->sample_interval, begin->lease,
              [reactor, response](absl::StatusOr<std::string> token) {
                if (token.ok()) response->set_run_token(*token);
                reactor->Finish(ToGrpcStatus(token.status()));
              });
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::ApplySettings(grpc::CallbackServerContext* context,
                                                          const v1::ApplySettingsRequest* request,
                                                          v1::ApplySettingsResponse* response) {
  absl::StatusOr<std::map<std::string, int64_t>> settings = ToSettings(*request);
  if (!settings.ok()) return Done(context, settings.status());
  auto applied = runs_.ApplySettings(CallerOf(*context), request->run_id(), *settings);
  if (applied.ok()) AddSettings(*applied, response->mutable_settings());
  return Done(context, applied.status());
}

grpc::ServerUnaryReactor* AgentServiceImpl::RestoreSettings(
    grpc::CallbackServerContext* context, const v1::RestoreSettingsRequest* request,
    v1::RestoreSettingsResponse* response) {
  auto restored = runs_.RestoreSettings(CallerOf(*context), request->run_id());
  if (restored.ok()) AddSettings(*restored, response->mutable_settings());
  return Done(context, restored.status());
}

grpc::ServerUnaryReactor* AgentServiceImpl::ApplyShaping(grpc::CallbackServerContext* context,
                                                         const v1::ApplyShapingRequest* request,
                                                         v1::ApplyShapingResponse* response) {
  absl::StatusOr<std::vector<ShapingRequest>> specs = ToShapingRequests(*request);
  if (!specs.ok()) return Done(context, specs.status());
  auto applied = runs_.ApplyShaping(CallerOf(*context), request->run_id(), *specs);
  if (applied.ok()) {
    for (const auto& a : *applied) {
      auto* out = response->add_shapings();
      out->set_interface(a.interface);
      out->set_backend(ToProto(a.backend));
      ToProto(a.delay, out->mutable_delay());
      ToProto(a.jitter, out->mutable_jitter());
      out->set_loss_percent(a.loss_percent);
      out->set_rate_bits_per_second(a.rate_bits_per_second);
      out->set_destination(a.destination);
    }
  }
  return Done(context, applied.status());
}

grpc::ServerUnaryReactor* AgentServiceImpl::StartListener(grpc::CallbackServerContext* context,
                                                          const v1::StartListenerRequest* request,
                                                          v1::StartListenerResponse* response) {
  absl::StatusOr<ListenerSpec> spec = ToListenerSpec(*request);
  if (!spec.ok()) return Done(context, spec.status());
  if (absl::Status own = CheckListenerAddress(spec->name, spec->address); !own.ok()) {
    return Done(context, own);
  }
  auto started = runs_.StartListener(CallerOf(*context), request->run_id(), *spec);
  if (started.ok()) ToProto(*started, response->mutable_listener());
  return Done(context, started.status());
}

grpc::ServerUnaryReactor* AgentServiceImpl::ObserveListener(
    grpc::CallbackServerContext* context, const v1::ObserveListenerRequest* request,
    v1::StartListenerResponse* response) {
  absl::StatusOr<ObserveSpec> observe = ToObserveSpec(*request);
  if (!observe.ok()) return Done(context, observe.status());
  auto observed = runs_.ObserveListener(CallerOf(*context), request->run_id(), observe->name,
                                        observe->port, observe->address);
  if (observed.ok()) ToProto(*observed, response->mutable_listener());
  return Done(context, observed.status());
}

grpc::ServerUnaryReactor* AgentServiceImpl::StopListener(grpc::CallbackServerContext* context,
                                                         const v1::StopListenerRequest* request,
                                                         v1::StopListenerResponse* response) {
  auto stopped = runs_.StopListener(CallerOf(*context), request->run_id(), request->name());
  if (stopped.ok()) ToProto(*stopped, response->mutable_listener());
  return Done(context, stopped.status());
}

grpc::ServerUnaryReactor* AgentServiceImpl::StartCapture(grpc::CallbackServerContext* context,
                                                         const v1::StartCaptureRequest* request,
                                                         v1::StartCaptureResponse* response) {
  auto started = runs_.StartCapture(CallerOf(*context), request->run_id(), request->interface());
  if (started.ok()) {
    response->set_interface(started->interface);
    response->set_file(started->file);
  }
  return Done(context, started.status());
}

grpc::ServerUnaryReactor* AgentServiceImpl::StartFloods(grpc::CallbackServerContext* context,
                                                        const v1::StartFloodsRequest* request,
                                                        v1::StartFloodsResponse*) {
  absl::StatusOr<FloodsSpec> floods = ToFloodsSpec(*request);
  if (!floods.ok()) return Done(context, floods.status());
  for (const FloodSpec& spec : floods->floods) {
    if (absl::Status allowed = policy_.targets.CheckTarget(spec.name, spec.target); !allowed.ok()) {
      return Done(context, allowed);
    }
  }
  return Done(context, runs_.StartFloods(CallerOf(*context), request->run_id(), floods->start_at,
                                         std::move(floods->floods)));
}

grpc::ServerWriteReactor<v1::Sample>* AgentServiceImpl::Watch(grpc::CallbackServerContext* context,
                                                              const v1::WatchRequest* request) {
  std::chrono::nanoseconds batch_interval{0};
  if (request->has_batch_interval()) batch_interval = FromProto(request->batch_interval());
  auto* reactor = new WatchReactor(runs_, CallerOf(*context), request->run_id(),
                                   std::max(batch_interval, std::chrono::nanoseconds(0)));
  if (batch_interval.count() < 0) {
    reactor->Refuse(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("batch_interval: must not be negative, got ", batch_interval.count(), " ns")));
    return reactor;
  }
  reactor->Subscribe();
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::CollectResults(grpc::CallbackServerContext* context,
                                                           const v1::CollectResultsRequest* request,
                                                           v1::CollectResultsResponse* response) {
  auto* reactor = context->DefaultReactor();
  // Finishes when the floods finish, from a manager thread: no gRPC thread blocks.
  absl::Status queued =
      runs_.Collect(CallerOf(*context), request->run_id(), request->wait_only(),
                    [reactor, response](absl::StatusOr<CollectedRun> collected) {
                      if (!collected.ok()) {
                        reactor->Finish(ToGrpcStatus(collected.status()));
                        return;
                      }
                      for (const auto& f : collected->floods) ToProto(f, response->add_floods());
                      for (const auto& l : collected->listeners)
                        ToProto(l, response->add_listeners());
                      ToProto(collected->counter_deltas, response->mutable_counter_deltas());
                      for (const auto& s : collected->server_sockets) {
                        auto* out = response->add_server_sockets();
                        out->set_local(s.local);
                        out->set_remote(s.remote);
                        out->set_state(static_cast<v1::TcpState>(s.state));
                        out->set_accepted(s.accepted);
                        out->set_listener(s.listener);
                      }
                      for (const auto& [name, n] : collected->drop_events) {
                        (*response->mutable_drop_events())[name] = n;
                      }
                      response->set_drop_events_unavailable(collected->drop_events_unavailable);
                      if (collected->capture.has_value() || !collected->capture_error.empty()) {
                        ToProto(*collected, response->mutable_capture());
                      }
                      reactor->Finish(grpc::Status::OK);
                    });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::EndRun(grpc::CallbackServerContext* context,
                                                   const v1::EndRunRequest* request,
                                                   v1::EndRunResponse* response) {
  auto* reactor = context->DefaultReactor();
  // The teardown (joining floods, removing shaping) runs on a manager thread.
  runs_.End(CallerOf(*context), request->run_id(),
            [reactor, response](absl::StatusOr<std::map<std::string, int64_t>> restored) {
              if (restored.ok()) AddSettings(*restored, response->mutable_restored());
              reactor->Finish(ToGrpcStatus(restored.status()));
            });
  return reactor;
}

}  // namespace synq::agent
