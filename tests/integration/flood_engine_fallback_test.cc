// Proves the epoll fallback of the flood engine with real agents under a seccomp filter that
// refuses io_uring_setup with EPERM, as Docker 25+ and containerd 2.0 do by default
// (seccomp_deny_io_uring installs it, then execs the agent): the agent picks epoll and says why
// in host info (`synq info`); `--flood-engine io_uring` refuses to start there, naming EPERM; and
// a flood against a never-accepting listener gives the same kernel-derived figures on epoll as on
// io_uring: backlog + 1 established, every other connect timed out at connect_timeout, and
// result.json's Flood.engine names the engine that ran.
#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Server: somaxconn 16, a never-accepting listener with backlog 4 (effective 4, under somaxconn).
// Client: 8 connects one at a time (rate 0, concurrency 1), connect_timeout 300 ms.
// Derivation (the kernel's, as in listen_backlog_test): the accept queue is full only beyond
// its limit, so it takes backlog + 1 = 5 handshakes; each later SYN is dropped on the full queue
// (no RST) and would be retransmitted after the 1 s initial RTO, past the 300 ms connect timeout,
// so the other 3 connects time out at 300 ms after their launch. Bounded: 8 attempts, about
// 3 x 300 ms + hold 500 ms.
constexpr int64_t kBacklog = 4;
constexpr int64_t kConnections = 8;
constexpr double kConnectTimeoutMs = 300;
constexpr char kScenario[] = R"(name: engine-fallback
sample_interval: 100ms
hosts:
  server: {}
  client: {}
settings:
  server: { net.core.somaxconn: 16 }
listeners:
  - { name: l1, host: server, port: 0, backlog: 4, accept: never }
floods:
  - { name: f1, host: client, target: l1, connections: 8, concurrency: 1, rate: 0,
      connect_timeout: 300ms, start_after: 0s, hold: 500ms, payload: "" }
)";

// Sets an environment variable for the scope (children started meanwhile inherit it).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

class FloodEngineFallback : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: embedded hosts are network namespaces";
    scenario_ = out_.path() + "/engine-fallback.yaml";
    std::ofstream(scenario_) << kScenario;
  }
  void TearDown() override {
    for (const auto& ns : SynqNamespaces()) {
      EXPECT_EQ(ns.rfind("synq-lab", 0), std::string::npos) << "left behind: " << ns;
    }
  }

  static std::string Launcher() { return Binary("tests/integration/seccomp_deny_io_uring"); }

  // The run's one flood row, after checking the figures derived above.
  static void ExpectBacklogFigures(const SynqRun& r, const std::string& engine) {
    SCOPED_TRACE(engine);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_TRUE(r.result.is_object()) << r.output;
    ASSERT_EQ(r.result["runs"].size(), 1u);
    const json& run = r.result["runs"][0];
    const json& l1 = run["listeners"]["l1"];
    const json& f1 = run["floods"]["f1"];
    EXPECT_EQ(f1.value("engine", ""), engine);
    EXPECT_EQ(l1["backlog_effective"].get<int64_t>(), kBacklog);
    EXPECT_EQ(l1["accepted"].get<int64_t>(), 0);
    EXPECT_EQ(l1["accept_queue_peak"].get<int64_t>(), kBacklog + 1);
    EXPECT_EQ(f1["attempted"].get<int64_t>(), kConnections);
    EXPECT_EQ(f1["established"].get<int64_t>(), kBacklog + 1);
    EXPECT_EQ(f1["timed_out"].get<int64_t>(), kConnections - (kBacklog + 1));
    EXPECT_EQ(f1["reset"].get<int64_t>(), 0);
    EXPECT_EQ(f1["refused"].get<int64_t>(), 0);
    // The established ones wait in the server's accept queue.
    EXPECT_EQ(f1["fates"]["queued"].get<int64_t>(), kBacklog + 1);
    // Each timeout is decided connect_timeout after its launch (closed loop: launch = scheduled
    // instant). The slack is the loop's wake-up on a shared machine; without the engine's own
    // deadline the connect would end only when tcp_syn_retries (6: about 127 s) ran out.
    ASSERT_EQ(f1["timed_out_after_ms"].size(), static_cast<size_t>(kConnections - kBacklog - 1));
    for (const json& t : f1["timed_out_after_ms"]) {
      EXPECT_GE(t.get<double>(), kConnectTimeoutMs);
      EXPECT_LT(t.get<double>(), kConnectTimeoutMs + 500);
    }
  }

  TempDir out_;
  std::string scenario_;
};

TEST_F(FloodEngineFallback, AgentUnderSeccompPicksEpollAndSaysWhyInHostInfo) {
  const std::string socket = out_.path() + "/agent.sock";
  const pid_t agent =
      Spawn({Launcher(), Binary("agent/synq-agent"), "--listen", "unix:" + socket, "--state-dir",
             out_.path() + "/state", "--port-file", out_.path() + "/agent.addr"},
            out_.path() + "/agent.log");
  ASSERT_GT(agent, 0);
  const bool up = PollUntil(
      [&] {
        std::ifstream in(out_.path() + "/agent.addr");
        std::string line;
        return static_cast<bool>(std::getline(in, line)) && !line.empty();
      },
      10s);
  ProcessResult info;
  if (up) info = RunProcess({Binary("controller/synq"), "info", "unix:" + socket}, 30s);
  kill(agent, SIGTERM);
  EXPECT_GE(WaitFor(agent, 10s), 0);
  ASSERT_TRUE(up) << "agent under the filter did not come up";
  ASSERT_EQ(info.exit_code, 0) << info.output;
  // The filter answers EPERM; with kernel.io_uring_disabled at 0 only seccomp explains it.
  EXPECT_TRUE(absl::StrContains(info.output, "flood engine epoll (io_uring_setup: EPERM"))
      << info.output;
  std::ifstream disabled("/proc/sys/kernel/io_uring_disabled");
  int value = 0;
  if (!(disabled >> value) || value == 0) {
    EXPECT_TRUE(absl::StrContains(info.output, "seccomp")) << info.output;
  }
}

TEST_F(FloodEngineFallback, ForcedIoUringUnderSeccompRefusesToStartNamingEperm) {
  const ProcessResult r =
      RunProcess({Launcher(), Binary("agent/synq-agent"), "--flood-engine", "io_uring", "--listen",
                  "unix:" + out_.path() + "/agent.sock", "--state-dir", out_.path() + "/state"},
                 30s);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "io_uring_setup: EPERM")) << r.output;
}

TEST_F(FloodEngineFallback, EpollGivesTheSameBacklogFiguresAsIoUring) {
  // Without the filter: io_uring, when this kernel lets this process have it.
  io_uring_params params{};
  const long ring = syscall(__NR_io_uring_setup, 1, &params);
  if (ring < 0)
    GTEST_SKIP() << "io_uring_setup: " << std::strerror(errno) << ": nothing to compare";
  close(static_cast<int>(ring));
  const SynqRun uring = RunSynq(scenario_, out_.path() + "/io_uring");
  ExpectBacklogFigures(uring, "io_uring");

  // Embedded agents started through the launcher: every agent of the run is under the filter.
  ScopedEnv agent("SYNQ_AGENT", Launcher());
  ScopedEnv exec("SYNQ_SECCOMP_EXEC", Binary("agent/synq-agent"));
  const SynqRun epoll = RunSynq(scenario_, out_.path() + "/epoll");
  ExpectBacklogFigures(epoll, "epoll");
  // The table names the engine only when it is not the usual io_uring.
  EXPECT_TRUE(absl::StrContains(epoll.output, "flood engine: epoll")) << epoll.output;
  EXPECT_FALSE(absl::StrContains(uring.output, "flood engine:")) << uring.output;
  std::ifstream html(out_.path() + "/epoll/report.html");
  const std::string report((std::istreambuf_iterator<char>(html)), {});
  EXPECT_TRUE(absl::StrContains(report, "engine epoll")) << "report.html names the engine";
}

}  // namespace
}  // namespace synq::testing
