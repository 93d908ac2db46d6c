// Proves the agent's gRPC service end to end in one process: a real server on 127.0.0.1:0 over a
// RunManager, driven through the controller's real client. A full run measures a backlog-4
// listener overflowing and restores settings; a broken Watch stream and a lapsed lease each make
// the agent end the run itself; run-state and spec errors map to the right gRPC codes; host info
// reports the kernel and capabilities. Settings go to a temporary fake /proc/sys only (this
// process runs in the host's network namespace), traffic only to 127.0.0.1.
// A batched Watch sends the whole per-interval series in few messages by the run's end.
#include "agent/service/agent_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/kernel/sysctl_settings.h"
#include "common/net_address.h"
#include "common/unique_fd.h"
#include "controller/agent_client.h"
#include "proto/proto_time.h"

namespace synq::agent {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::synq::agent::v1;
using controller::AgentClient;
using controller::ConnectAgent;
using controller::WatchHandle;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr char kSomaxconn[] = "net.core.somaxconn";
constexpr int64_t kOriginalSomaxconn = 4096;
constexpr int64_t kRunSomaxconn = 1024;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// Polls `done` every 20 ms until it holds or `limit` passes; returns its last value.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return done();
}

v1::BeginRunRequest BeginRequest(const std::string& run_id,
                                 std::chrono::nanoseconds lease = seconds(0)) {
  v1::BeginRunRequest request;
  request.set_run_id(run_id);
  proto::ToProto(milliseconds(50), request.mutable_sample_interval());
  if (lease > seconds(0)) proto::ToProto(lease, request.mutable_lease());
  return request;
}

v1::ApplySettingsRequest SettingsRequest(const std::string& run_id, const std::string& key,
                                         int64_t value) {
  v1::ApplySettingsRequest request;
  request.set_run_id(run_id);
  auto* setting = request.add_settings();
  setting->set_key(key);
  setting->set_value(value);
  return request;
}

v1::StartListenerRequest ListenerRequest(const std::string& run_id, const std::string& name,
                                         uint32_t port, v1::AcceptMode accept) {
  v1::StartListenerRequest request;
  request.set_run_id(run_id);
  v1::ListenerSpec* l = request.mutable_listener();
  l->set_name(name);
  l->set_address("127.0.0.1");
  l->set_port(port);
  l->set_backlog(4);
  l->set_accept(accept);
  return request;
}

std::map<std::string, int64_t> SettingsOf(
    const google::protobuf::RepeatedPtrField<v1::Setting>& settings) {
  std::map<std::string, int64_t> out;
  for (const auto& s : settings) out[s.key()] = s.value();
  return out;
}

// Samples seen by a Watch stream, collected from its stream thread.
class SampleLog {
 public:
  std::function<void(const v1::Sample&)> Sink() {
    return [this](const v1::Sample& sample) {
      std::lock_guard<std::mutex> lock(mu_);
      ++count_;
      for (const auto& l : sample.listeners()) listener_names_.insert(l.name());
    };
  }
  int count() {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  bool Named(const std::string& listener) {
    std::lock_guard<std::mutex> lock(mu_);
    return listener_names_.contains(listener);
  }

 private:
  std::mutex mu_;
  int count_ = 0;
  std::set<std::string> listener_names_;
};

// An agent service on 127.0.0.1:0 over a RunManager whose /proc/sys and state dir are
// temporary, and the controller's client connected to it.
class AgentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/synq-service-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    proc_sys_ = root_ + "/proc/sys";
    WriteFake(kSomaxconn, kOriginalSomaxconn);
    WriteFake("net.ipv4.tcp_abort_on_overflow", 0);
    WriteFake("net.ipv4.tcp_synack_retries", 5);
    WriteFake("net.ipv4.tcp_syn_retries", 6);
    WriteFake("net.ipv4.tcp_syncookies", 1);
    WriteFake("net.ipv4.tcp_max_syn_backlog", 1024);
    // Floods go through the real kernel, so their port planning reads the real port settings.
    for (const char* file : {"ip_local_port_range", "ip_local_reserved_ports", "tcp_tw_reuse"}) {
      // Read and written, not copied: procfs files report a size of 0.
      std::ifstream in(std::string("/proc/sys/net/ipv4/") + file);
      std::ofstream(proc_sys_ + "/net/ipv4/" + file) << in.rdbuf();
    }

    runs_ = std::make_unique<RunManager>(
        AgentPaths{.proc_sys_dir = proc_sys_, .state_dir = root_ + "/state"}, Options());
    service_ = std::make_unique<AgentServiceImpl>(*runs_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    address_ = absl::StrCat("127.0.0.1:", port);
    auto client = ConnectAgent(address_, seconds(5));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  // Tests that need other limits override this.
  virtual RunManagerOptions Options() { return RunManagerOptions{}; }

  void TearDown() override {
    client_.reset();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + seconds(2));
    server_.reset();
    service_.reset();
    runs_.reset();  // ends a run a test left open
    fs::remove_all(root_);
  }

  void WriteFake(const std::string& key, int64_t value) {
    const fs::path path = SysctlPath(proc_sys_, key);
    fs::create_directories(path.parent_path());
    std::ofstream(path) << value << "\n";
  }
  int64_t ReadFake(const std::string& key) {
    std::ifstream in(SysctlPath(proc_sys_, key));
    int64_t value = -1;
    in >> value;
    return value;
  }

  std::string root_;
  std::string proc_sys_;
  std::string address_;
  std::unique_ptr<RunManager> runs_;
  std::unique_ptr<AgentServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<AgentClient> client_;
};

TEST_F(AgentServiceTest, FullRunMeasuresBacklogOverflowAndEndRunRestoresSettings) {
  const std::string run = "full-run";
  ASSERT_TRUE(client_->BeginRun(BeginRequest(run)).ok());

  auto applied = client_->ApplySettings(SettingsRequest(run, kSomaxconn, kRunSomaxconn));
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(SettingsOf(applied->settings()),
            (std::map<std::string, int64_t>{{kSomaxconn, kRunSomaxconn}}));
  EXPECT_EQ(ReadFake(kSomaxconn), kRunSomaxconn);

  SampleLog samples;
  auto watch = client_->Watch(run, samples.Sink());
  ASSERT_TRUE(watch.ok()) << watch.status();

  auto listener =
      client_->StartListener(ListenerRequest(run, "backlog4", 0, v1::ACCEPT_MODE_NEVER));
  ASSERT_TRUE(listener.ok()) << listener.status();
  auto bound = common::ParseSocketAddress(listener->listener().address());
  ASSERT_TRUE(bound.ok()) << listener->listener().address();
  EXPECT_NE(bound->port(), 0);
  EXPECT_EQ(listener->listener().backlog(), 4);
  EXPECT_EQ(listener->listener().backlog_effective(), 4);

  EXPECT_TRUE(WaitUntil([&] { return samples.Named("backlog4"); }, seconds(3)))
      << samples.count() << " samples, none naming the listener";

  auto clock = client_->GetClock();
  ASSERT_TRUE(clock.ok()) << clock.status();
  v1::StartFloodsRequest floods;
  floods.set_run_id(run);
  proto::ToProto(proto::FromProto(clock->now()) + milliseconds(100), floods.mutable_start_at());
  v1::FloodSpec* flood = floods.add_floods();
  flood->set_name("flood");
  flood->set_target(listener->listener().address());
  flood->set_connections(10);
  flood->set_concurrency(1);
  proto::ToProto(milliseconds(300), flood->mutable_connect_timeout());
  proto::ToProto(milliseconds(200), flood->mutable_hold());
  {
    auto started = client_->StartFloods(floods);
    ASSERT_TRUE(started.ok()) << started;
  }

  auto results = client_->CollectResults(run, seconds(20));
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->floods_size(), 1);
  const v1::FloodResult& f = results->floods(0);
  EXPECT_EQ(f.attempted(), 10u);
  // backlog 4 holds 5 (the kernel's queue is full only above the backlog); the rest time out.
  EXPECT_EQ(f.established(), 5u);
  EXPECT_EQ(f.timed_out(), 5u);
  ASSERT_EQ(results->listeners_size(), 1);
  EXPECT_EQ(results->listeners(0).name(), "backlog4");
  EXPECT_EQ(results->listeners(0).accept_queue_peak(), 5);
  EXPECT_EQ(results->listeners(0).accepted(), 0u);
  int64_t overflows = 0;
  for (const auto& c : results->counter_deltas()) {
    if (c.name() == "TcpExtListenOverflows") overflows = c.value();
  }
  EXPECT_GT(overflows, 0);
  ASSERT_EQ(results->server_sockets_size(), 5);
  for (const auto& s : results->server_sockets()) {
    EXPECT_EQ(s.state(), v1::TCP_STATE_ESTABLISHED) << s.remote();
    EXPECT_FALSE(s.accepted()) << s.remote();
    EXPECT_EQ(s.listener(), "backlog4");
    EXPECT_EQ(s.local(), listener->listener().address());
  }

  auto ended = client_->EndRun(run);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(SettingsOf(ended->restored()),
            (std::map<std::string, int64_t>{{kSomaxconn, kOriginalSomaxconn}}));
  EXPECT_EQ(ReadFake(kSomaxconn), kOriginalSomaxconn);
  EXPECT_FALSE(fs::exists(root_ + "/state/settings-journal.json"));

  const absl::Status watch_end = (*watch)->Wait();
  EXPECT_TRUE(watch_end.ok()) << watch_end;
  EXPECT_GE(samples.count(), 1);
}

TEST_F(AgentServiceTest, DroppingTheWatchStreamMakesTheAgentEndTheRun) {
  ASSERT_TRUE(client_->BeginRun(BeginRequest("abandoned")).ok());
  ASSERT_TRUE(client_->ApplySettings(SettingsRequest("abandoned", kSomaxconn, kRunSomaxconn)).ok());
  ASSERT_EQ(ReadFake(kSomaxconn), kRunSomaxconn);

  SampleLog samples;
  auto watch = client_->Watch("abandoned", samples.Sink());
  ASSERT_TRUE(watch.ok()) << watch.status();
  // The agent has the stream once a sample arrives; dropping it earlier could race the call.
  ASSERT_TRUE(WaitUntil([&] { return samples.count() > 0; }, seconds(3)));
  watch->reset();

  EXPECT_TRUE(WaitUntil([&] { return ReadFake(kSomaxconn) == kOriginalSomaxconn; }, seconds(3)))
      << "somaxconn is still " << ReadFake(kSomaxconn);
  absl::Status next = absl::UnknownError("not tried");
  EXPECT_TRUE(WaitUntil(
      [&] {
        next = client_->BeginRun(BeginRequest("next"));
        return next.ok();
      },
      seconds(3)))
      << next;
}

TEST_F(AgentServiceTest, SecondRunWhileOneIsOpenIsFailedPreconditionWithoutNamingTheOpenRun) {
  ASSERT_TRUE(client_->BeginRun(BeginRequest("first")).ok());
  const absl::Status second = client_->BeginRun(BeginRequest("second"));
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition) << second;
  EXPECT_THAT(Message(second), HasSubstr("another run is open"));
  // The open run's id is its owner's secret: it would let anyone end or change the run.
  EXPECT_THAT(Message(second), ::testing::Not(HasSubstr("first")));
  // The same id again is not a second run.
  const absl::Status again = client_->BeginRun(BeginRequest("first"));
  EXPECT_TRUE(again.ok()) << again;
}

TEST_F(AgentServiceTest, UnknownSettingKeyIsInvalidArgumentNamingTheKey) {
  ASSERT_TRUE(client_->BeginRun(BeginRequest("run")).ok());
  auto applied = client_->ApplySettings(SettingsRequest("run", "net.ipv4.no_such_knob", 1));
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument) << applied.status();
  EXPECT_THAT(Message(applied.status()), HasSubstr("net.ipv4.no_such_knob"));
  EXPECT_EQ(ReadFake(kSomaxconn), kOriginalSomaxconn);
}

TEST_F(AgentServiceTest, ListenerWithoutAcceptModeIsInvalidArgument) {
  ASSERT_TRUE(client_->BeginRun(BeginRequest("run")).ok());
  auto started =
      client_->StartListener(ListenerRequest("run", "l", 0, v1::ACCEPT_MODE_UNSPECIFIED));
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument) << started.status();
  EXPECT_THAT(Message(started.status()), HasSubstr("accept"));
}

TEST_F(AgentServiceTest, ListenerOnAPortInUseFailsSayingInUse) {
  // Someone else's listener on 127.0.0.1, on a port the kernel picked.
  common::UniqueFd other(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(other);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(other.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(other.get(), 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(other.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const uint16_t port = ntohs(addr.sin_port);

  ASSERT_TRUE(client_->BeginRun(BeginRequest("run")).ok());
  auto started = client_->StartListener(ListenerRequest("run", "l", port, v1::ACCEPT_MODE_NEVER));
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(Message(started.status()), HasSubstr("in use"));
}

TEST_F(AgentServiceTest, CallsForARunThatIsNotOpenAreRefusedWithoutNamingTheOpenRun) {
  // No run open: FAILED_PRECONDITION. Another caller's run open: PERMISSION_DENIED (this client
  // holds no token for it). Neither names the open run.
  absl::StatusCode expected = absl::StatusCode::kFailedPrecondition;
  auto expect_not_open = [&](const absl::Status& status, const char* rpc) {
    EXPECT_EQ(status.code(), expected) << rpc << ": " << status;
    EXPECT_THAT(Message(status), ::testing::Not(HasSubstr("current"))) << rpc;
  };
  auto try_all = [&] {
    expect_not_open(client_->ApplySettings(SettingsRequest("stale", kSomaxconn, 1)).status(),
                    "ApplySettings");
    expect_not_open(
        client_->StartListener(ListenerRequest("stale", "l", 0, v1::ACCEPT_MODE_NEVER)).status(),
        "StartListener");
    v1::StartFloodsRequest floods;
    floods.set_run_id("stale");
    expect_not_open(client_->StartFloods(floods), "StartFloods");
    expect_not_open(client_->CollectResults("stale", seconds(5)).status(), "CollectResults");
    auto watch = client_->Watch("stale", [](const v1::Sample&) {});
    ASSERT_TRUE(watch.ok()) << watch.status();
    expect_not_open((*watch)->Wait(), "Watch");
  };
  {
    SCOPED_TRACE("no run open");
    try_all();
  }
  {
    SCOPED_TRACE("another run open");
    auto owner = ConnectAgent(address_, seconds(5));
    ASSERT_TRUE(owner.ok()) << owner.status();
    ASSERT_TRUE((*owner)->BeginRun(BeginRequest("current")).ok());
    expected = absl::StatusCode::kPermissionDenied;
    try_all();
  }
  EXPECT_EQ(ReadFake(kSomaxconn), kOriginalSomaxconn);
}

TEST_F(AgentServiceTest, HostInfoReportsKernelReleaseVersionAndCapabilities) {
  auto info = client_->GetHostInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  utsname uts{};
  ASSERT_EQ(::uname(&uts), 0);
  EXPECT_EQ(info->kernel_release(), uts.release);
  EXPECT_FALSE(info->agent_version().empty());
  EXPECT_TRUE(info->armed_start()) << "controllers arm this agent's floods before the instant";

  auto has = [&](v1::Capability c) {
    return std::find(info->capabilities().begin(), info->capabilities().end(), c) !=
           info->capabilities().end();
  };
  auto missing_reason = [&](v1::Capability c) -> std::optional<std::string> {
    for (const auto& m : info->missing_capabilities()) {
      if (m.capability() == c) return m.reason();
    }
    return std::nullopt;
  };
  if (!has(v1::CAPABILITY_NETEM)) {
    const auto why = missing_reason(v1::CAPABILITY_NETEM);
    ASSERT_TRUE(why.has_value()) << "NETEM neither present nor reported missing";
    EXPECT_FALSE(why->empty()) << "NETEM reported missing without a reason";
  }
  EXPECT_TRUE(has(v1::CAPABILITY_SOCK_DIAG))
      << missing_reason(v1::CAPABILITY_SOCK_DIAG).value_or("(not reported missing)");
  if (!has(v1::CAPABILITY_IO_URING)) {
    GTEST_SKIP() << "io_uring unavailable: "
                 << missing_reason(v1::CAPABILITY_IO_URING).value_or("(no reason given)");
  }
}

TEST_F(AgentServiceTest, RunWhoseLeaseRunsOutIsEndedByTheAgent) {
  const auto begun = std::chrono::steady_clock::now();
  ASSERT_TRUE(client_->BeginRun(BeginRequest("leased", milliseconds(300))).ok());
  ASSERT_TRUE(client_->ApplySettings(SettingsRequest("leased", kSomaxconn, kRunSomaxconn)).ok());

  EXPECT_TRUE(WaitUntil([&] { return ReadFake(kSomaxconn) == kOriginalSomaxconn; }, seconds(2)))
      << "somaxconn is still " << ReadFake(kSomaxconn);
  EXPECT_GE(std::chrono::steady_clock::now() - begun, milliseconds(300));
  absl::Status next = absl::UnknownError("not tried");
  EXPECT_TRUE(WaitUntil(
      [&] {
        next = client_->BeginRun(BeginRequest("next"));
        return next.ok();
      },
      seconds(2)))
      << next;
}

}  // namespace
}  // namespace synq::agent

namespace synq::agent {
namespace {

TEST_F(AgentServiceTest, ANewRunWaitsUntilTheEndingRunHasRestoredItsSettings) {
  ASSERT_TRUE(client_->BeginRun(BeginRequest("a")).ok());
  ASSERT_TRUE(client_->ApplySettings(SettingsRequest("a", kSomaxconn, kRunSomaxconn)).ok());
  auto listener = client_->StartListener(ListenerRequest("a", "l", 0, v1::ACCEPT_MODE_NEVER));
  ASSERT_TRUE(listener.ok()) << listener.status();
  // A flood still connecting when the run ends makes its teardown take a moment.
  auto clock = client_->GetClock();
  ASSERT_TRUE(clock.ok());
  v1::StartFloodsRequest floods;
  floods.set_run_id("a");
  *floods.mutable_start_at() = clock->now();
  v1::FloodSpec* flood = floods.add_floods();
  flood->set_name("f");
  flood->set_target(listener->listener().address());
  flood->set_connections(20);
  flood->set_concurrency(20);
  proto::ToProto(seconds(5), flood->mutable_connect_timeout());
  proto::ToProto(seconds(10), flood->mutable_hold());
  {
    auto started = client_->StartFloods(floods);
    ASSERT_TRUE(started.ok()) << started;
  }
  std::this_thread::sleep_for(milliseconds(200));

  std::thread end_a([&] { EXPECT_TRUE(client_->EndRun("a").ok()); });
  // b may reach the agent before a's EndRun does ("another run is open": try again), or while
  // a's teardown runs (b's BeginRun then waits for it); either way b must begin.
  absl::Status begun_b = absl::UnknownError("not tried");
  const bool b_began = WaitUntil(
      [&] {
        begun_b = client_->BeginRun(BeginRequest("b"));
        return begun_b.ok();
      },
      seconds(10));
  if (!b_began) end_a.join();
  ASSERT_TRUE(b_began) << begun_b;
  // b starts from the host as a left it: a's value is never journaled as b's original.
  auto applied = client_->ApplySettings(SettingsRequest("b", kSomaxconn, 2048));
  end_a.join();
  ASSERT_TRUE(applied.ok()) << applied.status();
  // a's listener is gone, so b can bind its port again.
  auto bound = common::ParseSocketAddress(listener->listener().address());
  ASSERT_TRUE(bound.ok());
  EXPECT_TRUE(
      client_->StartListener(ListenerRequest("b", "l", bound->port(), v1::ACCEPT_MODE_NEVER)).ok());
  ASSERT_TRUE(client_->EndRun("b").ok());
  EXPECT_EQ(ReadFake(kSomaxconn), kOriginalSomaxconn);
}

}  // namespace
}  // namespace synq::agent

namespace synq::agent {
namespace {

// A run belongs to the caller that began it. Another client that learns the run id (it is in
// logs and result files) still cannot change, collect, end or abandon it: each call is
// PERMISSION_DENIED, and cancelling a Watch it opened ends nothing.
TEST_F(AgentServiceTest, AnotherCallerCannotChangeCollectEndOrAbandonTheRun) {
  ASSERT_TRUE(client_->BeginRun(BeginRequest("owned")).ok());
  ASSERT_TRUE(client_->ApplySettings(SettingsRequest("owned", kSomaxconn, kRunSomaxconn)).ok());
  SampleLog samples;
  auto watch = client_->Watch("owned", samples.Sink());
  ASSERT_TRUE(watch.ok()) << watch.status();

  auto intruder = ConnectAgent(address_, seconds(5));
  ASSERT_TRUE(intruder.ok()) << intruder.status();
  auto denied = [](const absl::Status& status, const char* rpc) {
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << rpc << ": " << status;
  };
  denied((*intruder)->ApplySettings(SettingsRequest("owned", kSomaxconn, 7)).status(),
         "ApplySettings");
  denied((*intruder)->CollectResults("owned", seconds(5)).status(), "CollectResults");
  denied((*intruder)->EndRun("owned").status(), "EndRun");
  {
    auto stolen = (*intruder)->Watch("owned", [](const v1::Sample&) {});
    ASSERT_TRUE(stolen.ok());
    denied((*stolen)->Wait(), "Watch");
  }  // the intruder's stream is gone: the owner's run must not be abandoned for it

  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(ReadFake(kSomaxconn), kRunSomaxconn) << "the intruder changed or ended the run";
  auto still = client_->ApplySettings(SettingsRequest("owned", kSomaxconn, 2048));
  EXPECT_TRUE(still.ok()) << still.status();
  auto ended = client_->EndRun("owned");
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ReadFake(kSomaxconn), kOriginalSomaxconn);
}

TEST_F(AgentServiceTest, ALeaseAboveTheCapIsRefusedNamingTheCap) {
  // The cap is common::kMaxLease, 7 days.
  const absl::Status begun = client_->BeginRun(BeginRequest("pinning", std::chrono::hours(8 * 24)));
  EXPECT_EQ(begun.code(), absl::StatusCode::kInvalidArgument) << begun;
  EXPECT_THAT(Message(begun), HasSubstr("lease"));
  // The agent is not pinned: a sensible run begins.
  EXPECT_TRUE(client_->BeginRun(BeginRequest("sensible")).ok());
}

// An agent whose runs are abandoned quickly when nobody watches them.
class ShortWatchTimeoutTest : public AgentServiceTest {
 protected:
  RunManagerOptions Options() override {
    RunManagerOptions options;
    options.watch_open_timeout = milliseconds(400);
    return options;
  }
};

// BeginRun with a long lease and no Watch would hold the agent for the whole lease: the run is
// abandoned (and restored) once watch_open_timeout passes without a Watch.
TEST_F(ShortWatchTimeoutTest, ARunWhoseWatchNeverOpensIsAbandonedAndRestored) {
  const auto begun = std::chrono::steady_clock::now();
  ASSERT_TRUE(client_->BeginRun(BeginRequest("unwatched", std::chrono::hours(1))).ok());
  ASSERT_TRUE(client_->ApplySettings(SettingsRequest("unwatched", kSomaxconn, kRunSomaxconn)).ok());
  EXPECT_TRUE(WaitUntil([&] { return ReadFake(kSomaxconn) == kOriginalSomaxconn; }, seconds(3)))
      << "somaxconn is still " << ReadFake(kSomaxconn);
  EXPECT_GE(std::chrono::steady_clock::now() - begun, milliseconds(400));
  EXPECT_TRUE(client_->BeginRun(BeginRequest("next")).ok());
}

TEST_F(ShortWatchTimeoutTest, AWatchedRunOutlivesTheWatchTimeout) {
  ASSERT_TRUE(client_->BeginRun(BeginRequest("watched", std::chrono::hours(1))).ok());
  ASSERT_TRUE(client_->ApplySettings(SettingsRequest("watched", kSomaxconn, kRunSomaxconn)).ok());
  SampleLog samples;
  auto watch = client_->Watch("watched", samples.Sink());
  ASSERT_TRUE(watch.ok());
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_EQ(ReadFake(kSomaxconn), kRunSomaxconn);
  EXPECT_TRUE(client_->EndRun("watched").ok());
}

// Collecting a run serialises every server socket; that must not hold the run's lock the sampler
// needs. With 4,000 accepted connections held, the collection dumps and serialises 4,000 sockets
// (tens of ms); samples at a 5 ms interval must keep arriving during it at the pace they had
// just before. Before, the whole collection ran under the run's lock and the sampler stood still
// until it finished.
TEST_F(AgentServiceTest, TheSamplerKeepsItsIntervalWhileResultsAreCollected) {
  constexpr int kConnections = 4000;
  constexpr auto kInterval = milliseconds(5);
  v1::BeginRunRequest begin = BeginRequest("collect");
  proto::ToProto(kInterval, begin.mutable_sample_interval());
  ASSERT_TRUE(client_->BeginRun(begin).ok());
  std::mutex mu;
  std::vector<std::chrono::system_clock::time_point> sample_times;
  auto watch = client_->Watch("collect", [&](const v1::Sample& sample) {
    std::lock_guard<std::mutex> lock(mu);
    sample_times.push_back(proto::FromProto(sample.at()));
  });
  ASSERT_TRUE(watch.ok());
  v1::StartListenerRequest listen = ListenerRequest("collect", "l", 0, v1::ACCEPT_MODE_IMMEDIATE);
  listen.mutable_listener()->set_backlog(4096);
  auto listener = client_->StartListener(listen);
  ASSERT_TRUE(listener.ok()) << listener.status();
  auto clock = client_->GetClock();
  ASSERT_TRUE(clock.ok());
  v1::StartFloodsRequest floods;
  floods.set_run_id("collect");
  *floods.mutable_start_at() = clock->now();
  v1::FloodSpec* flood = floods.add_floods();
  flood->set_name("f");
  flood->set_target(listener->listener().address());
  flood->set_connections(kConnections);
  flood->set_concurrency(kConnections);
  flood->set_threads(1);
  proto::ToProto(seconds(5), flood->mutable_connect_timeout());
  proto::ToProto(milliseconds(500), flood->mutable_hold());
  ASSERT_TRUE(client_->StartFloods(floods).ok());
  ASSERT_TRUE(client_->CollectResults("collect", seconds(30), /*wait_only=*/true).ok());

  const auto t0 = std::chrono::system_clock::now();
  auto collected = client_->CollectResults("collect", seconds(30));
  const auto t1 = std::chrono::system_clock::now();
  ASSERT_TRUE(collected.ok()) << collected.status();
  ASSERT_GE(collected->server_sockets_size(), kConnections / 2);
  // Samples come in batches (WatchRequest.batch_interval, 1 s): wait for one taken after t1.
  const auto give_up = std::chrono::steady_clock::now() + seconds(5);
  while (std::chrono::steady_clock::now() < give_up) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!sample_times.empty() && sample_times.back() > t1) break;
    }
    std::this_thread::sleep_for(kInterval);
  }

  // The baseline is the sampler's own pace in an equal window just before the collection, on
  // the same (shared, noisy) machine.
  std::vector<std::chrono::system_clock::time_point> during;
  size_t before = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto at : sample_times) {
      if (at >= t0 && at <= t1) during.push_back(at);
      if (at >= t0 - (t1 - t0) && at < t0) ++before;
    }
  }
  const double collect_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  if (collect_ms < 8 * kInterval.count()) {
    GTEST_SKIP() << "the collection took only " << collect_ms
                 << " ms, too short to tell a blocked sampler from a running one";
  }
  // A sampler held up by the collection takes at most one sample in the window; one that keeps
  // its interval takes about as many as in the window before. A third allows for the
  // collection's own CPU use on two shared cores.
  EXPECT_GE(during.size(), 3u) << "collection took " << collect_ms << " ms";
  EXPECT_GE(3 * during.size(), before)
      << "collection took " << collect_ms << " ms; samples during it: " << during.size()
      << ", in the same time before it: " << before;
  ASSERT_TRUE(client_->EndRun("collect").ok());
}


// A batched Watch (WatchRequest.batch_interval) sends the same per-interval series in few
// messages: with a batch interval longer than the run, nothing comes before EndRun, and then
// every sample the agent took, in order. Expected count: the run lasts at least 500 ms at a
// 50 ms sample interval (BeginRequest), so at least 500 / 50 = 10 samples were taken (the
// sampler takes one at once and then one per interval; a stalled sampler takes fewer, so the
// bound is half that).
TEST_F(AgentServiceTest, BatchedWatchSendsTheWholeSeriesInFewMessagesByTheEnd) {
  const std::string run = "batched";
  v1::BeginRunResponse begun;
  {
    auto stub = v1::AgentService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    ASSERT_TRUE(stub->BeginRun(&context, BeginRequest(run), &begun).ok());
  }
  auto stub = v1::AgentService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.AddMetadata("synq-run-token", begun.run_token());
  v1::WatchRequest request;
  request.set_run_id(run);
  proto::ToProto(seconds(60), request.mutable_batch_interval());
  auto reader = stub->Watch(&context, request);

  std::mutex mu;
  int messages = 0;
  std::vector<v1::Sample> series;
  std::thread read([&] {
    v1::Sample message;
    while (reader->Read(&message)) {
      std::lock_guard<std::mutex> lock(mu);
      ++messages;
      for (const auto& s : message.batch()) series.push_back(s);
      // A batched message carries samples only in `batch`.
      EXPECT_FALSE(message.has_at());
    }
  });
  std::this_thread::sleep_for(milliseconds(500));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(messages, 0) << "a batch came before its interval";
  }
  grpc::ClientContext end_context;
  end_context.AddMetadata("synq-run-token", begun.run_token());
  v1::EndRunRequest end;
  end.set_run_id(run);
  v1::EndRunResponse ended;
  ASSERT_TRUE(stub->EndRun(&end_context, end, &ended).ok());
  read.join();
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(messages, 1);
  EXPECT_GE(series.size(), 5u);
  for (size_t i = 1; i < series.size(); ++i) {
    EXPECT_LT(proto::FromProto(series[i - 1].at()), proto::FromProto(series[i].at())) << i;
  }
}

}  // namespace
}  // namespace synq::agent
