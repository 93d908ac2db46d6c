// Proves the RunManager's threads together, without gRPC (so ThreadSanitizer sees only our code:
// `.ci/dev tsan` runs this): a run begun, sampled, flooded against its own loopback listener,
// collected twice at once while the sampler runs, and ended from another thread while a second
// caller's Begin waits for that teardown; floods armed without an instant wait for their fire,
// and never start when the run ends first. Settings go to a temporary fake /proc/sys only.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "agent/kernel/sysctl_settings.h"
#include "agent/run/run_session.h"
#include "common/net_address.h"
#include "common/unique_fd.h"
#include "tests/unit/agent/fake_proc_sys.h"
#include "tests/unit/agent/loopback_listener.h"

namespace synq::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class RunManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/synq-runmanager-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    const std::string proc_sys = root_ + "/proc/sys";
    WriteFakeProcSys(proc_sys);
    // Floods plan against the real kernel's port settings.
    for (const char* file : {"ip_local_port_range", "ip_local_reserved_ports", "tcp_tw_reuse"}) {
      std::ifstream in(std::string("/proc/sys/net/ipv4/") + file);
      std::ofstream(proc_sys + "/net/ipv4/" + file) << in.rdbuf();
    }
    runs_ = std::make_unique<RunManager>(
        AgentPaths{.proc_sys_dir = proc_sys, .state_dir = root_ + "/state"});
  }
  void TearDown() override {
    runs_.reset();
    fs::remove_all(root_);
  }

  // Begins a run for `caller` and returns its token (or the error).
  absl::StatusOr<std::string> Begin(const Caller& caller, const std::string& id) {
    std::promise<absl::StatusOr<std::string>> done;
    runs_->Begin(caller, id, 5ms, 60s,
                 [&done](absl::StatusOr<std::string> token) { done.set_value(std::move(token)); });
    return done.get_future().get();
  }

  std::string root_;
  std::unique_ptr<RunManager> runs_;
};

TEST_F(RunManagerTest, FloodCollectAndEndFromManyThreadsWhileTheSamplerRuns) {
  Caller owner;
  auto token = Begin(owner, "r1");
  ASSERT_TRUE(token.ok()) << token.status();
  owner.token = *token;

  std::atomic<int> samples{0};
  auto sink = runs_->Subscribe(
      owner, "r1", [&](const SampleValue&) { samples.fetch_add(1); }, [] {});
  ASSERT_TRUE(sink.ok()) << sink.status();

  ListenerSpec listen;
  listen.name = "l";
  listen.address = "127.0.0.1";
  listen.backlog = 64;
  listen.accept = AcceptMode::kImmediate;
  auto listener = runs_->StartListener(owner, "r1", listen);
  ASSERT_TRUE(listener.ok()) << listener.status();

  FloodSpec flood;
  flood.name = "f";
  auto target = common::ParseSocketAddress(listener->address);
  ASSERT_TRUE(target.ok()) << target.status();
  flood.target = *target;
  flood.connections = 200;
  flood.concurrency = 50;
  flood.threads = 2;
  flood.connect_timeout = 2s;
  flood.hold = 100ms;
  std::vector<FloodSpec> floods = {flood};
  ASSERT_TRUE(runs_->StartFloods(owner, "r1", std::chrono::system_clock::now(), floods).ok());

  // Two collections at once, from two threads, while floods finish and the sampler runs.
  std::promise<absl::StatusOr<CollectedRun>> first, second;
  std::thread a([&] {
    EXPECT_TRUE(
        runs_
            ->Collect(owner, "r1", false,
                      [&](absl::StatusOr<CollectedRun> c) { first.set_value(std::move(c)); })
            .ok());
  });
  std::thread b([&] {
    EXPECT_TRUE(
        runs_
            ->Collect(owner, "r1", false,
                      [&](absl::StatusOr<CollectedRun> c) { second.set_value(std::move(c)); })
            .ok());
  });
  a.join();
  b.join();
  auto one = first.get_future().get();
  auto two = second.get_future().get();
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(one->floods.size(), 1u);
  // 200 connects to a listener that accepts at once with room for 65 queued: all establish.
  EXPECT_EQ(one->floods[0].established, 200u);
  EXPECT_EQ(two->floods[0].established, 200u);
  EXPECT_GT(samples.load(), 0);

  // Another caller's Begin waits for the teardown that an End on a third thread runs.
  Caller other;
  std::promise<absl::Status> ended;
  std::thread ender([&] {
    runs_->End(owner, "r1", [&](absl::StatusOr<std::map<std::string, int64_t>> r) {
      ended.set_value(r.status());
    });
  });
  auto next = Begin(other, "r2");
  ender.join();
  EXPECT_TRUE(ended.get_future().get().ok());
  // Either r1 was still open (refused: another run is open) or its teardown was done first.
  if (!next.ok()) {
    EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition) << next.status();
    next = Begin(other, "r2");
  }
  ASSERT_TRUE(next.ok()) << next.status();
  other.token = *next;
  // The first owner's token does not open the second caller's run.
  auto denied = runs_->ApplySettings(owner, "r2", {{"net.core.somaxconn", 64}});
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied) << denied.status();
}

// Whether a connection sits in a never-accepting listener's accept queue (poll() says readable
// as soon as one does), so "no connect reached it" is observable.
bool Queued(const common::UniqueFd& listener) {
  pollfd p{listener.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

TEST_F(RunManagerTest, ArmedFloodsStartOnlyWhenFiredAndNeverIfTheRunEndsFirst) {
  Caller owner;
  auto token = Begin(owner, "r1");
  ASSERT_TRUE(token.ok()) << token.status();
  owner.token = *token;
  auto sink = runs_->Subscribe(
      owner, "r1", [](const SampleValue&) {}, [] {});
  ASSERT_TRUE(sink.ok()) << sink.status();
  common::UniqueFd listener = Listen(64);
  const common::SocketAddress address = AddressOf(listener);
  FloodSpec flood;
  flood.name = "f";
  flood.target = address;
  flood.connections = 10;
  flood.concurrency = 10;
  flood.connect_timeout = 2s;
  flood.hold = 50ms;

  // Armed: planned and waiting; nothing connects, and a second arm is refused.
  ASSERT_TRUE(runs_->StartFloods(owner, "r1", std::nullopt, {flood}).ok());
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(Queued(listener)) << "an armed flood connected before it was fired";
  absl::Status again = runs_->StartFloods(owner, "r1", std::nullopt, {flood});
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_NE(again.message().find("armed and not fired"), std::string::npos) << again;

  // Fired 100 ms ahead: the flood starts then (its measured start is not before the instant)
  // and all 10 connects land in the 65-slot accept queue.
  const auto fire_at = std::chrono::system_clock::now() + 100ms;
  ASSERT_TRUE(runs_->StartFloods(owner, "r1", fire_at, {}).ok());
  std::promise<absl::StatusOr<CollectedRun>> collected;
  ASSERT_TRUE(
      runs_
          ->Collect(owner, "r1", false,
                    [&](absl::StatusOr<CollectedRun> c) { collected.set_value(std::move(c)); })
          .ok());
  auto run = collected.get_future().get();
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->floods.size(), 1u);
  EXPECT_EQ(run->floods[0].established, 10u);
  EXPECT_GE(run->floods[0].started_at, fire_at);
  EXPECT_TRUE(Queued(listener));
  std::promise<absl::Status> ended;
  runs_->End(owner, "r1", [&](absl::StatusOr<std::map<std::string, int64_t>> r) {
    ended.set_value(r.status());
  });
  ASSERT_TRUE(ended.get_future().get().ok());

  // Armed, then the run ends: the flood never starts and the end does not wait for a fire.
  common::UniqueFd second = Listen(64);
  const common::SocketAddress second_address = AddressOf(second);
  flood.target = second_address;
  auto next = Begin(owner, "r2");
  ASSERT_TRUE(next.ok()) << next.status();
  owner.token = *next;
  ASSERT_TRUE(runs_
                  ->Subscribe(
                      owner, "r2", [](const SampleValue&) {}, [] {})
                  .ok());
  ASSERT_TRUE(runs_->StartFloods(owner, "r2", std::nullopt, {flood}).ok());
  std::promise<absl::Status> ended_armed;
  runs_->End(owner, "r2", [&](absl::StatusOr<std::map<std::string, int64_t>> r) {
    ended_armed.set_value(r.status());
  });
  auto end_status = ended_armed.get_future();
  ASSERT_EQ(end_status.wait_for(10s), std::future_status::ready) << "End waited for a fire";
  EXPECT_TRUE(end_status.get().ok());
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(Queued(second)) << "a flood armed in an ended run connected";
}

}  // namespace
}  // namespace synq::agent
