// Soak benchmark (issue 8 item 8): many short runs against one real, standalone agent, reporting
// what the agent keeps from them. The target is zero growth: the same open descriptors, the same
// RSS (within the allocator's noise), and nothing left behind in the kernel or on disk.
//
// Setup
// - One synq-agent in a test namespace (`synq-t<pid>-soak`, a veth pair v0 198.18.3.1/24 -
//   v1 inside it), serving on a unix socket, with its own state dir.
// - Each `synq run` invocation sweeps a listener's backlog over 5 values: 5 runs, each changing
//   two sysctls, shaping v0 with NFQUEUE (an iptables rule and a queue thread), capturing on v0,
//   starting a listener and flooding it with 8 connections. Every kind of state the agent takes
//   per run is taken and must be given back. Separate invocations also exercise the agent's
//   per-channel state (each synq is a new gRPC connection).
// - One warm-up invocation first (gRPC's threads, lazily allocated pools), then "before".
//
// Reported: the agent's /proc/PID/fd count and VmRSS before and after; iptables rules (filter,
// mangle) and qdiscs of the namespace against their originals; tracefs `synq-*` instances that
// appeared; files in the agent's state dir; entries of /run/synq that appeared.
// Assertions: every invocation exits 0, and nothing is left in the kernel or the state dir (the
// descriptor and RSS figures are printed, not asserted: RSS moves with the allocator).
//
// Smoke (CTest, label bench): 20 runs. Full (figures in docs/testing.md):
//   sudo build/tests/bench/bench_soak --runs 1000
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

int g_runs = 20;
constexpr int kRunsPerInvocation = 5;

long FdCount(pid_t pid) {
  std::error_code ec;
  long n = 0;
  for (auto it = fs::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

long RssKb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::set<std::string> Entries(const std::string& dir, const std::string& prefix = "") {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = fs::relative(it->path(), dir, ec).string();
    if (rel.rfind(prefix, 0) == 0) out.insert(rel);
  }
  return out;
}

std::set<std::string> TracefsInstances() {
  std::set<std::string> out;
  for (const char* root :
       {"/sys/kernel/tracing/instances", "/sys/kernel/debug/tracing/instances"}) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(root, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind("synq-", 0) == 0) out.insert(name);
    }
    if (!out.empty()) break;
  }
  return out;
}

std::vector<std::string> Added(const std::set<std::string>& before,
                               const std::set<std::string>& after) {
  std::vector<std::string> out;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(out));
  return out;
}

TEST(Soak, ManyShortRunsLeaveTheAgentAsTheyFoundIt) {
  if (!IsRoot()) GTEST_SKIP() << "needs root: the agent runs in a test network namespace";
  TempDir dir;
  TestNetns ns("soak");
  ns.Exec({"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"});
  ns.Exec({"ip", "addr", "add", "198.18.3.1/24", "dev", "v0"});
  ns.Exec({"ip", "link", "set", "v0", "up"});
  ns.Exec({"ip", "link", "set", "v1", "up"});
  auto rules = [&] {
    return ns.Exec({"iptables", "-w", "-S"}) + ns.Exec({"iptables", "-w", "-t", "mangle", "-S"});
  };
  auto qdiscs = [&] { return ns.Exec({"tc", "qdisc", "show"}); };
  const std::string rules_before = rules();
  const std::string qdiscs_before = qdiscs();
  const std::set<std::string> instances_before = TracefsInstances();
  const std::set<std::string> run_synq_before = Entries("/run/synq");

  const std::string socket = dir.path() + "/agent.sock";
  const std::string state = dir.path() + "/state";
  const pid_t agent =
      Spawn({Binary("agent/synq-agent"), "--netns", ns.name(), "--listen", "unix:" + socket,
             "--state-dir", state, "--port-file", dir.path() + "/addr"},
            dir.path() + "/agent.log");
  ASSERT_GT(agent, 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGTERM);
      if (WaitFor(pid, seconds(10)) < 0) kill(pid, SIGKILL), WaitFor(pid, seconds(5));
    }
  } reap{agent};
  for (int i = 0; i < 200 && !fs::exists(dir.path() + "/addr"); ++i) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(fs::exists(dir.path() + "/addr")) << "agent did not start";
  const long fd_cold = FdCount(agent);
  const long rss_cold = RssKb(agent);

  const std::string scenario = dir.Write("soak.yaml", absl::StrCat(R"(name: soak
hosts:
  server: { agent: "unix:)",
                                                                   socket, R"(", interface: v0 }
settings:
  server: { net.core.somaxconn: 64, net.ipv4.tcp_synack_retries: 2 }
shaping:
  - { host: server, delay: 1ms, backend: nfqueue }
capture: [server]
listeners:
  - { name: l1, backlog: 8 }
floods:
  - { name: f1, target: l1, connections: 8, concurrency: 8, connect_timeout: 2s }
sweep:
  listeners.l1.backlog: [4, 8, 16, 32, 64]
)"));
  const std::string out = dir.path() + "/out";
  auto invoke = [&](int i) {
    ProcessResult r =
        RunProcess({Binary("controller/synq"), "run", scenario, "--out", out}, seconds(300));
    EXPECT_EQ(r.exit_code, 0) << "invocation " << i << ":\n" << r.output;
    return r.exit_code == 0;
  };
  ASSERT_TRUE(invoke(0)) << "warm-up";
  const long fd_before = FdCount(agent);
  const long rss_before = RssKb(agent);
  const std::set<std::string> state_before = Entries(state);

  const int invocations = std::max(1, g_runs / kRunsPerInvocation);
  const auto began = std::chrono::steady_clock::now();
  int failed = 0;
  for (int i = 1; i <= invocations && failed < 3; ++i) {
    if (!invoke(i)) ++failed;
    if (i % 20 == 0) {
      std::printf("  %d runs: fds %ld, rss %ld kB\n", i * kRunsPerInvocation, FdCount(agent),
                  RssKb(agent));
      std::fflush(stdout);
    }
  }
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  // The last run's teardown finishes after EndRun answers: give it a moment.
  std::this_thread::sleep_for(milliseconds(500));
  const long fd_after = FdCount(agent);
  const long rss_after = RssKb(agent);
  const std::vector<std::string> state_added = Added(state_before, Entries(state));
  const std::set<std::string> state_after = Entries(state);
  const std::vector<std::string> instances_added = Added(instances_before, TracefsInstances());
  const std::vector<std::string> run_synq_added = Added(run_synq_before, Entries("/run/synq"));
  const std::string rules_after = rules();
  const std::string qdiscs_after = qdiscs();

  std::printf(
      "soak: %d runs (%d synq invocations of %d runs) in %.0f s\n"
      "  agent fds:  cold %ld, before %ld, after %ld (growth %ld)\n"
      "  agent RSS:  cold %ld kB, before %ld kB, after %ld kB (growth %ld kB, %.1f B per run)\n"
      "  state dir:  %zu entries before, %zu after; added: %zu [%s]\n"
      "  iptables:   %s\n  qdiscs:     %s\n"
      "  tracefs synq-* instances added: [%s]\n  /run/synq entries added: [%s]\n",
      invocations * kRunsPerInvocation, invocations, kRunsPerInvocation, took, fd_cold, fd_before,
      fd_after, fd_after - fd_before, rss_cold, rss_before, rss_after, rss_after - rss_before,
      1024.0 * (rss_after - rss_before) / (invocations * kRunsPerInvocation), state_before.size(),
      state_after.size(), state_added.size(),
      absl::StrJoin(state_added.begin(),
                    state_added.begin() + std::min<size_t>(3, state_added.size()), ", ")
          .c_str(),
      rules_after == rules_before ? "as before" : ("CHANGED:\n" + rules_after).c_str(),
      qdiscs_after == qdiscs_before ? "as before" : ("CHANGED:\n" + qdiscs_after).c_str(),
      absl::StrJoin(instances_added, ", ").c_str(), absl::StrJoin(run_synq_added, ", ").c_str());

  EXPECT_EQ(failed, 0);
  EXPECT_EQ(rules_after, rules_before);
  EXPECT_EQ(qdiscs_after, qdiscs_before);
  EXPECT_EQ(state_added.size(), 0u) << "files the runs left in the agent's state dir";
  // Instances of other processes may come and go on a shared machine: only the agent's own
  // (named synq-<agent pid>-N) count.
  const std::string own = absl::StrCat("synq-", agent, "-");
  for (const auto& name : instances_added) EXPECT_NE(name.rfind(own, 0), 0u) << name;
}

}  // namespace
}  // namespace synq::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--full") synq::testing::g_runs = 1000;
    if (arg == "--runs" && i + 1 < argc) synq::testing::g_runs = std::atoi(argv[++i]);
  }
  return RUN_ALL_TESTS();
}
