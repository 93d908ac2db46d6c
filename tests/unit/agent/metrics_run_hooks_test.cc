// Proves that RunManager feeds AgentMetrics on every path a run takes (no gRPC): begun; ended by
// its controller, by its lease running out, by never opening a Watch, by Abandon (the Watch
// broke) and by Shutdown, each counted under its own reason with one restore per end; and that a
// real loopback listener of the run gets accept-queue gauges labelled with its bound address once
// the sampler has seen it, which go when it stops. Settings go to a temporary fake /proc/sys.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/kernel/sysctl_settings.h"
#include "agent/metrics/agent_metrics.h"
#include "agent/run/run_session.h"
#include "tests/unit/agent/fake_proc_sys.h"

namespace synq::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::optional<double> Value(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, series + " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) return value;
  }
  return std::nullopt;
}

class MetricsRunHooks : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/synq-metrics-hooks-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    const std::string proc_sys = root_ + "/proc/sys";
    WriteFakeProcSys(proc_sys);
    RunManagerOptions options;
    options.metrics = &metrics_;
    options.watch_open_timeout = 300ms;
    runs_ = std::make_unique<RunManager>(
        AgentPaths{.proc_sys_dir = proc_sys, .state_dir = root_ + "/state"}, options);
  }
  void TearDown() override {
    runs_.reset();
    fs::remove_all(root_);
  }

  absl::StatusOr<std::string> Begin(const Caller& caller, const std::string& id,
                                    std::chrono::nanoseconds lease) {
    std::promise<absl::StatusOr<std::string>> done;
    runs_->Begin(caller, id, 5ms, lease,
                 [&done](absl::StatusOr<std::string> token) { done.set_value(std::move(token)); });
    return done.get_future().get();
  }
  // Waits (at most 5 s) until `series` reads `want`; returns what it read last.
  std::optional<double> WaitFor(const std::string& series, double want) {
    std::optional<double> got;
    for (int i = 0; i < 500; ++i) {
      got = Value(metrics_.Render(), series);
      if (got == want) break;
      std::this_thread::sleep_for(10ms);
    }
    return got;
  }

  AgentMetrics metrics_{std::vector<std::pair<std::string, std::string>>{}};
  std::string root_;
  std::unique_ptr<RunManager> runs_;
};

TEST_F(MetricsRunHooks, EveryWayARunEndsIsCountedUnderItsReason) {
  Caller owner;
  // 1: ended by its controller (it opened a Watch, so the watch timeout does not end it).
  auto token = Begin(owner, "r1", 60s);
  ASSERT_TRUE(token.ok()) << token.status();
  owner.token = *token;
  EXPECT_EQ(Value(metrics_.Render(), "synq_run_open"), 1);
  auto sink = runs_->Subscribe(
      owner, "r1", [](const SampleValue&) {}, [] {});
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::promise<void> ended;
  runs_->End(owner, "r1", [&](auto) { ended.set_value(); });
  ended.get_future().wait();
  EXPECT_EQ(Value(metrics_.Render(), "synq_runs_ended_total{reason=\"ended_by_controller\"}"), 1);

  // 2: its lease (200 ms) runs out before the watch timeout (300 ms).
  owner = {};
  ASSERT_TRUE(Begin(owner, "r2", 200ms).ok());
  EXPECT_EQ(WaitFor("synq_runs_ended_total{reason=\"lease_expired\"}", 1), 1);

  // 3: no Watch opened within 300 ms.
  ASSERT_TRUE(Begin(owner, "r3", 60s).ok());
  EXPECT_EQ(WaitFor("synq_runs_ended_total{reason=\"unwatched\"}", 1), 1);

  // 4: the controller's Watch broke.
  auto r4 = Begin(owner, "r4", 60s);
  ASSERT_TRUE(r4.ok());
  runs_->Abandon("r4", "test");
  EXPECT_EQ(WaitFor("synq_runs_ended_total{reason=\"abandoned\"}", 1), 1);

  // 5: SIGTERM.
  ASSERT_TRUE(WaitFor("synq_run_open", 0) == 0);
  ASSERT_TRUE(Begin(owner, "r5", 60s).ok());
  runs_->Shutdown();
  const std::string text = metrics_.Render();
  EXPECT_EQ(Value(text, "synq_runs_ended_total{reason=\"shutdown\"}"), 1);
  EXPECT_EQ(Value(text, "synq_runs_begun_total"), 5);
  EXPECT_EQ(Value(text, "synq_restores_total{phase=\"run_end\"}"), 5);
  EXPECT_EQ(Value(text, "synq_restore_failures_total{phase=\"run_end\"}"), 0);
  EXPECT_EQ(Value(text, "synq_run_open"), 0);
}

TEST_F(MetricsRunHooks, ListenerGaugesCarryTheBoundAddressAndGoWhenItStops) {
  Caller owner;
  auto token = Begin(owner, "r1", 60s);
  ASSERT_TRUE(token.ok()) << token.status();
  owner.token = *token;
  ASSERT_TRUE(runs_
                  ->Subscribe(
                      owner, "r1", [](const SampleValue&) {}, [] {})
                  .ok());
  ListenerSpec listen;
  listen.name = "l1";
  listen.address = "127.0.0.1";
  listen.backlog = 7;
  listen.accept = AcceptMode::kNever;
  auto listener = runs_->StartListener(owner, "r1", listen);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const std::string labels = absl::StrCat("{listener=\"l1\",address=\"", listener->address, "\"}");
  // The kernel's limit for listen(7) under a somaxconn far above 7 is 7; nothing connected.
  EXPECT_EQ(WaitFor("synq_listener_accept_queue_max_connections" + labels, 7), 7)
      << metrics_.Render();
  EXPECT_EQ(Value(metrics_.Render(), "synq_listener_accept_queue_connections" + labels), 0);
  ASSERT_TRUE(runs_->StopListener(owner, "r1", "l1").ok());
  EXPECT_FALSE(absl::StrContains(metrics_.Render(), "synq_listener_"));
  std::promise<void> ended;
  runs_->End(owner, "r1", [&](auto) { ended.set_value(); });
  ended.get_future().wait();
}

}  // namespace
}  // namespace synq::agent
