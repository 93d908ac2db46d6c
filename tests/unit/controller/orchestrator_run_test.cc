// Proves the orchestration of one run against fake agents: the order of calls, target resolution
// (same host -> loopback, other host -> its address), one start instant corrected for each
// agent's clock offset (armed agents get floods first, the instant after), the fixed
// result.json names, and that every agent's run is ended even when a step fails.
#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "common/status_macros.h"
#include "controller/orchestrator.h"
#include "controller/run/phases.h"
#include "proto/proto_time.h"

namespace synq::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::chrono::nanoseconds ThreadCpuTime() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Records every call; answers like an agent whose clock runs `offset` ahead.
class FakeAgent : public AgentClient {
 public:
  FakeAgent(std::string name, std::chrono::nanoseconds offset)
      : name_(std::move(name)), offset_(offset) {}

  const std::string& address() const override { return name_; }
  absl::StatusOr<v1::HostInfo> GetHostInfo() override { return v1::HostInfo(); }
  absl::StatusOr<v1::GetClockResponse> GetClock() override {
    v1::GetClockResponse r;
    proto::ToProto(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(offset_),
                   r.mutable_now());
    return r;
  }
  absl::Status BeginRun(const v1::BeginRunRequest&) override { return Record("BeginRun"); }
  absl::StatusOr<v1::ApplySettingsResponse> ApplySettings(
      const v1::ApplySettingsRequest& request) override {
    RETURN_IF_ERROR(Record("ApplySettings"));
    v1::ApplySettingsResponse r;
    *r.mutable_settings() = request.settings();
    return r;
  }
  absl::StatusOr<v1::ApplyShapingResponse> ApplyShaping(const v1::ApplyShapingRequest&) override {
    RETURN_IF_ERROR(Record("ApplyShaping"));
    return v1::ApplyShapingResponse();
  }
  absl::StatusOr<v1::StartListenerResponse> StartListener(
      const v1::StartListenerRequest& request) override {
    RETURN_IF_ERROR(Record("StartListener"));
    v1::StartListenerResponse r;
    r.mutable_listener()->set_name(request.listener().name());
    r.mutable_listener()->set_address("0.0.0.0:4242");
    r.mutable_listener()->set_ip("0.0.0.0");
    r.mutable_listener()->set_port(4242);
    listeners_.push_back(request.listener());
    return r;
  }
  absl::StatusOr<v1::StartCaptureResponse> StartCapture(const v1::StartCaptureRequest&) override {
    RETURN_IF_ERROR(Record("StartCapture"));
    return v1::StartCaptureResponse();
  }
  // As an armed agent does: floods (with or without an instant) replace what it holds; an
  // instant alone fires what it holds.
  absl::Status StartFloods(const v1::StartFloodsRequest& request) override {
    RETURN_IF_ERROR(Record("StartFloods"));
    std::lock_guard<std::mutex> lock(mu_);
    start_requests_.push_back(request);
    if (request.floods_size() > 0) {
      floods_ = request;
    } else {
      *floods_.mutable_start_at() = request.start_at();
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(
      const std::string&, std::function<void(const v1::Sample&)> on_sample) override {
    RETURN_IF_ERROR(Record("Watch"));
    v1::Sample sample;
    proto::ToProto(std::chrono::system_clock::now(), sample.mutable_at());
    auto* l = sample.add_listeners();
    l->set_name("l1");
    l->set_accept_queue(3);
    on_sample(sample);
    struct Done : WatchHandle {
      absl::Status Wait() override { return absl::OkStatus(); }
    };
    return std::unique_ptr<WatchHandle>(std::make_unique<Done>());
  }
  absl::StatusOr<v1::CollectResultsResponse> CollectResults(const std::string&,
                                                            std::chrono::nanoseconds,
                                                            bool) override {
    RETURN_IF_ERROR(Record("CollectResults"));
    // CPU this call costs the controller's process (it runs there): spun on the thread's clock.
    const auto burn_from = ThreadCpuTime();
    while (ThreadCpuTime() - burn_from < collect_cpu) {
    }
    v1::CollectResultsResponse r;
    for (const auto& f : floods_.floods()) {
      auto* out = r.add_floods();
      out->set_name(f.name());
      out->set_attempted(f.connections());
      out->set_established(f.connections());
      out->mutable_connect_latency()->set_p50_ms(0.05);
      *out->mutable_started_at() = floods_.start_at();
      auto* c = out->add_connections();
      c->set_outcome(v1::OUTCOME_ESTABLISHED);
      c->set_local("198.18.0.3:50000");
      c->set_remote(f.target());
    }
    for (const auto& l : listeners_) {
      auto* out = r.add_listeners();
      out->set_name(l.name());
      out->set_address("0.0.0.0:4242");
      out->set_ip("0.0.0.0");
      out->set_port(4242);
      out->set_backlog(l.backlog());
      out->set_backlog_effective(l.backlog());
      auto* s = r.add_server_sockets();
      s->set_local("198.18.0.2:4242");
      s->set_remote("198.18.0.3:50000");
      s->set_state(v1::TCP_STATE_ESTABLISHED);
    }
    auto* counter = r.add_counter_deltas();
    counter->set_name("TcpExtListenOverflows");
    counter->set_value(name_ == "server" ? 6 : 0);
    return r;
  }
  absl::StatusOr<v1::EndRunResponse> EndRun(const std::string&) override {
    Record("EndRun").IgnoreError();
    return v1::EndRunResponse();
  }

  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::string fail_at;  // the call that fails, if any
  std::chrono::nanoseconds collect_cpu{0};  // CPU spent in CollectResults
  v1::StartFloodsRequest floods_;
  std::vector<v1::StartFloodsRequest> start_requests_;

 private:
  absl::Status Record(const std::string& call) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(call);
    if (call == fail_at) return absl::UnavailableError(call + " failed on " + name_);
    return absl::OkStatus();
  }
  std::string name_;
  std::chrono::nanoseconds offset_;
  std::mutex mu_;
  std::vector<std::string> calls_;
  std::vector<v1::ListenerSpec> listeners_;
};

Scenario TwoHosts() {
  Scenario s;
  s.name = "t";
  s.hosts = {{"server", "", ""}, {"client", "", ""}};
  s.settings["server"]["net.core.somaxconn"] = 16;
  ListenerDef l;
  l.name = "l1";
  l.host = "server";
  l.backlog = 4;
  s.listeners = {l};
  FloodDef remote;
  remote.name = "f1";
  remote.host = "client";
  remote.target = "l1";
  remote.connections = 3;
  FloodDef local = remote;
  local.name = "f2";
  local.host = "server";
  s.floods = {remote, local};
  return s;
}

struct Fixture {
  Fixture() {
    auto server = std::make_unique<FakeAgent>("server", seconds(0));
    auto client = std::make_unique<FakeAgent>("client", seconds(5));
    server_ = server.get();
    client_ = client.get();
    hosts.push_back({"server", std::move(server), {}, "198.18.0.2", "eth0"});
    hosts.push_back({"client", std::move(client), {}, "198.18.0.3", "eth0"});
  }
  std::vector<HostHandle> hosts;
  FakeAgent* server_;
  FakeAgent* client_;
};

TEST(OrchestratorRun, ResolvesTargetsStartsAtOneInstantAndWritesTheFixedNames) {
  Fixture f;
  Orchestrator orchestrator(f.hosts, RunOptions{});
  RunPlan plan{TwoHosts(), {{"listeners.l1.backlog", SweepValue::Int(4)}}};
  std::vector<RunFailure> failures;
  const synq::result::v1::Run run = orchestrator.Run(plan, 0, &failures);
  EXPECT_TRUE(failures.empty());

  // Another host reaches the listener at its host address; the same host over loopback.
  ASSERT_EQ(f.client_->floods_.floods_size(), 1);
  EXPECT_EQ(f.client_->floods_.floods(0).target(), "198.18.0.2:4242");
  ASSERT_EQ(f.server_->floods_.floods_size(), 1);
  EXPECT_EQ(f.server_->floods_.floods(0).target(), "127.0.0.1:4242");
  EXPECT_EQ(run.floods().at("f1").target(), "198.18.0.2:4242");
  EXPECT_EQ(run.floods().at("f1").listener(), "l1");
  // One instant, sent in each agent's own clock: the client's runs 5 s ahead.
  const auto server_start = proto::FromProto(f.server_->floods_.start_at());
  const auto client_start = proto::FromProto(f.client_->floods_.start_at());
  EXPECT_NEAR(std::chrono::duration<double>(client_start - server_start).count(), 5.0, 0.05);
  ASSERT_TRUE(run.has_start_skew_ms());
  EXPECT_LT(run.start_skew_ms(), 50.0);

  EXPECT_EQ(run.params().at("listeners.l1.backlog").number_value(), 4);
  const auto& l1 = run.listeners().at("l1");
  EXPECT_EQ(l1.host(), "server");
  EXPECT_EQ(l1.port(), 4242u);
  EXPECT_EQ(l1.backlog_effective(), 4);
  const auto& f1 = run.floods().at("f1");
  EXPECT_EQ(f1.host(), "client");
  EXPECT_EQ(f1.attempted(), 3u);
  EXPECT_EQ(f1.fates().queued(), 1u);
  EXPECT_TRUE(f1.server_observed());
  EXPECT_EQ(run.hosts().at("server").settings().at("net.core.somaxconn"), 16);
  EXPECT_EQ(run.hosts().at("server").counters().at("TcpExtListenOverflows"), 6);
  EXPECT_EQ(run.hosts().at("client").counters().at("TcpExtListenOverflows"), 0)
      << "a counter that did not move reads 0";
  ASSERT_EQ(run.samples_size(), 2);
  EXPECT_EQ(run.samples(0).listeners().at("l1").accept_queue(), 3);

  // Settings only where the scenario has them; every host's run is ended.
  auto calls = f.client_->calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "ApplySettings"), 0);
  EXPECT_EQ(calls.back(), "EndRun");
  calls = f.server_->calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "ApplySettings"), 1);
  EXPECT_EQ(calls.back(), "EndRun");
}

TEST(OrchestratorRun, EveryPhaseReportsItsWallTimeAndTheControllerCpuItCost) {
  Fixture f;
  // Each agent's CollectResults costs the controller 60 ms of CPU; nothing else is that heavy.
  constexpr milliseconds kCollectCpu{60};
  f.server_->collect_cpu = kCollectCpu;
  f.client_->collect_cpu = kCollectCpu;
  RunOptions options;
  options.connect_duration = milliseconds(7);
  options.connect_cpu = milliseconds(3);
  Orchestrator orchestrator(f.hosts, options);
  RunPlan plan{TwoHosts(), {}};
  std::vector<RunFailure> failures;
  const synq::result::v1::Run first = orchestrator.Run(plan, 0, &failures);
  const synq::result::v1::Run second = orchestrator.Run(plan, 1, &failures);
  EXPECT_TRUE(failures.empty());

  const double cores = std::max(1u, std::thread::hardware_concurrency());
  for (const char* phase : {"prepare", "start", "collect", "end"}) {
    SCOPED_TRACE(phase);
    ASSERT_TRUE(first.phase_ms().contains(phase));
    ASSERT_TRUE(first.phase_cpu_ms().contains(phase));
    // CPU time of all threads fits in the phase's wall time on every core (1 ms: the two
    // clocks' granularity).
    EXPECT_GE(first.phase_cpu_ms().at(phase), 0);
    EXPECT_LE(first.phase_cpu_ms().at(phase), first.phase_ms().at(phase) * cores + 1);
  }
  // The collect phase carries both agents' CPU, wherever the calls ran; prepare none of it.
  EXPECT_GE(first.phase_cpu_ms().at("collect"), 2.0 * kCollectCpu.count());
  EXPECT_LT(first.phase_cpu_ms().at("prepare"), kCollectCpu.count());
  // Connecting happened once, before the first run: only that run reports it.
  EXPECT_EQ(first.phase_ms().at("connect"), 7);
  EXPECT_EQ(first.phase_cpu_ms().at("connect"), 3);
  EXPECT_FALSE(second.phase_ms().contains("connect"));
  EXPECT_FALSE(second.phase_cpu_ms().contains("connect"));
  EXPECT_GE(second.phase_cpu_ms().at("collect"), 2.0 * kCollectCpu.count());
}

TEST(OrchestratorRun, AFailingStepIsReportedAndEveryAgentsRunIsStillEnded) {
  Fixture f;
  f.server_->fail_at = "StartListener";
  Orchestrator orchestrator(f.hosts, RunOptions{});
  std::vector<RunFailure> failures;
  const synq::result::v1::Run run = orchestrator.Run(RunPlan{TwoHosts(), {}}, 0, &failures);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].host, "server");
  EXPECT_NE(failures[0].message.find("listeners.l1"), std::string::npos) << failures[0].message;
  ASSERT_EQ(run.errors_size(), 1);
  // Nothing was started, so nothing about starts is claimed.
  EXPECT_FALSE(run.has_start_skew_ms());
  EXPECT_FALSE(run.not_observed().empty());
  for (FakeAgent* agent : {f.server_, f.client_}) {
    auto calls = agent->calls();
    EXPECT_EQ(std::count(calls.begin(), calls.end(), "StartFloods"), 0) << agent->address();
    EXPECT_EQ(calls.back(), "EndRun") << agent->address();
  }
}

TEST(OrchestratorRun, AHostFailingAfterTheStartDoesNotCostTheOthersTheirResults) {
  Fixture f;
  f.server_->fail_at = "CollectResults";
  Orchestrator orchestrator(f.hosts, RunOptions{});
  std::vector<RunFailure> failures;
  const synq::result::v1::Run run = orchestrator.Run(RunPlan{TwoHosts(), {}}, 0, &failures);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].host, "server");
  EXPECT_FALSE(run.hosts().at("server").error().empty());
  // The client's flood arrived and is kept; the server's own flood did not and is named.
  EXPECT_TRUE(run.floods().contains("f1"));
  EXPECT_FALSE(run.floods().contains("f2"));
  bool named = false;
  for (const auto& n : run.not_observed()) named = named || n.rfind("floods.f2", 0) == 0;
  EXPECT_TRUE(named);
  EXPECT_EQ(f.client_->calls().back(), "EndRun");
  EXPECT_EQ(f.server_->calls().back(), "EndRun");
}

// Each phase alone, on a context the previous phases filled.

TEST(PreparePhase, ReadsSettingsBackAndKeepsEachListenersBoundPortTyped) {
  Fixture f;
  const RunPlan plan{TwoHosts(), {}};
  RunOptions options;
  RunContext ctx(plan, 0, f.hosts, options);
  BeginPhase(ctx);
  PreparePhase(ctx);
  ASSERT_TRUE(ctx.ok());
  EXPECT_EQ(ctx.inputs.hosts[0].applied_settings.at("net.core.somaxconn"), 16);
  EXPECT_TRUE(ctx.inputs.hosts[1].applied_settings.empty());
  ASSERT_TRUE(ctx.bound.contains("l1"));
  EXPECT_EQ(ctx.bound.at("l1").port, 4242u);
  EXPECT_EQ(ctx.bound.at("l1").ip, "0.0.0.0");
  EndPhase(ctx);
}

TEST(SchedulePhase, TheInstantIsTakenOnTheInjectedClockAndSentInEachAgentsClock) {
  Fixture f;
  const RunPlan plan{TwoHosts(), {}};
  RunOptions options;
  // The controller's clock runs 100 s behind the machine's: offsets absorb it, and each agent
  // still gets the instant start_lead from now in its own clock.
  constexpr auto kBehind = std::chrono::seconds(100);
  options.now = [kBehind] { return Clock::now() - kBehind; };
  RunContext ctx(plan, 0, f.hosts, options);
  BeginPhase(ctx);
  PreparePhase(ctx);
  const auto before = options.now();
  SchedulePhase(ctx);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE(ctx.inputs.start_at.has_value());
  const double lead_s = std::chrono::duration<double>(*ctx.inputs.start_at - before).count();
  EXPECT_GE(lead_s, std::chrono::duration<double>(options.start_lead).count());  // the floor
  EXPECT_LT(lead_s, 5.0);
  // The server's clock is the machine's: 100 s ahead of the controller's.
  EXPECT_NEAR(std::chrono::duration<double>(*ctx.inputs.hosts[0].clock_offset).count(), 100.0,
              0.05);
  const auto server_start = proto::FromProto(f.server_->floods_.start_at());
  EXPECT_NEAR(
      std::chrono::duration<double>(server_start - (*ctx.inputs.start_at + kBehind)).count(), 0.0,
      0.05);
  EXPECT_EQ(ctx.inputs.targets.at("f1").ToString(), "198.18.0.2:4242");
  EndPhase(ctx);
}

// Begin, prepare and schedule TwoHosts() on `f`'s agents; whether each arms is its host info's.
void Schedule(Fixture& f, const std::vector<bool>& armed) {
  for (size_t i = 0; i < f.hosts.size(); ++i) f.hosts[i].info.set_armed_start(armed[i]);
  const RunPlan plan{TwoHosts(), {}};
  RunOptions options;
  RunContext ctx(plan, 0, f.hosts, options);
  BeginPhase(ctx);
  PreparePhase(ctx);
  SchedulePhase(ctx);
  EXPECT_TRUE(ctx.ok());
  EXPECT_TRUE(ctx.inputs.start_at.has_value());
  EndPhase(ctx);
}

TEST(SchedulePhase, AgentsThatArmGetTheirFloodsFirstAndTheInstantOnlyOnceAllHoldThem) {
  Fixture f;
  Schedule(f, {true, true});
  for (FakeAgent* agent : {f.server_, f.client_}) {
    // Arm: the floods without an instant; fire: the instant without floods.
    ASSERT_EQ(agent->start_requests_.size(), 2u) << agent->address();
    EXPECT_EQ(agent->start_requests_[0].floods_size(), 1) << agent->address();
    EXPECT_FALSE(agent->start_requests_[0].has_start_at()) << agent->address();
    EXPECT_EQ(agent->start_requests_[1].floods_size(), 0) << agent->address();
    EXPECT_TRUE(agent->start_requests_[1].has_start_at()) << agent->address();
  }
  // One instant, in each agent's clock (the client's runs 5 s ahead).
  const auto server_start = proto::FromProto(f.server_->start_requests_[1].start_at());
  const auto client_start = proto::FromProto(f.client_->start_requests_[1].start_at());
  EXPECT_NEAR(std::chrono::duration<double>(client_start - server_start).count(), 5.0, 0.05);
}

TEST(SchedulePhase, OneAgentThatCannotArmGetsEveryAgentTheOneCallStart) {
  Fixture f;
  Schedule(f, {true, false});  // the server arms; the client (an older agent) cannot
  for (FakeAgent* agent : {f.server_, f.client_}) {
    ASSERT_EQ(agent->start_requests_.size(), 1u) << agent->address();
    EXPECT_EQ(agent->start_requests_[0].floods_size(), 1) << agent->address();
    EXPECT_TRUE(agent->start_requests_[0].has_start_at()) << agent->address();
  }
}

TEST(CollectPhase, AfterTheStartAHostThatFailedIsSkippedAndTheOthersAreCollected) {
  Fixture f;
  const RunPlan plan{TwoHosts(), {}};
  RunOptions options;
  RunContext ctx(plan, 0, f.hosts, options);
  BeginPhase(ctx);
  PreparePhase(ctx);
  SchedulePhase(ctx);
  ctx.Fail("server", "stream lost");
  CollectPhase(ctx);
  EXPECT_FALSE(ctx.inputs.hosts[0].collected.has_value());
  ASSERT_TRUE(ctx.inputs.hosts[1].collected.has_value());
  EXPECT_EQ(ctx.inputs.hosts[1].collected->floods_size(), 1);
  EndPhase(ctx);
  // Failing to end a run loses no data: the host keeps its results and no error mark.
  EXPECT_TRUE(ctx.inputs.hosts[1].error.empty());
}

}  // namespace
}  // namespace synq::controller
