// Proves that an agent that stops answering mid-run (frozen with SIGSTOP while its flood holds
// its connections) fails its host with exit 3 within the Collect deadline, and that the message
// names the host, the call and the phase; after SIGCONT the agent ends the abandoned run by
// itself (the controller cancelled its Watch) and takes the next one.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

template <typename Pred>
bool Eventually(Pred pred, milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return pred();
}

// Established TCP sockets in the namespace (both ends of each loopback connection).
int Established(const TestNetns& ns) {
  const std::string out = ns.Exec({"ss", "-Htn", "state", "established"});
  int n = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    (void)line;
    ++n;
  }
  return n;
}

TEST(UnresponsiveAgent, FrozenMidFloodFailsItsHostWithinTheCollectDeadlineNamingThePhase) {
  if (!IsRoot()) GTEST_SKIP() << "needs root: the agent runs in a test network namespace";
  TempDir dir;
  TestNetns ns("frozen");
  ns.Exec({"ip", "link", "set", "lo", "up"});
  const std::string socket = dir.path() + "/agent.sock";
  const pid_t agent =
      Spawn({Binary("agent/synq-agent"), "--netns", ns.name(), "--listen", "unix:" + socket,
             "--state-dir", dir.path() + "/state", "--port-file", dir.path() + "/addr"},
            dir.path() + "/agent.log");
  ASSERT_GT(agent, 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGCONT);
      kill(pid, SIGKILL);
      WaitFor(pid, seconds(5));
    }
  } reap{agent};
  ASSERT_TRUE(
      Eventually([&] { return std::filesystem::exists(dir.path() + "/addr"); }, seconds(10)));

  // Four connections that connect at once on loopback and are held 3 s: the flood's budget is
  // connect_timeout (1 s, one wave) + hold (3 s) = 4 s.
  const std::string scenario = dir.Write("s.yaml", absl::StrCat(R"(name: frozen
hosts:
  server: { agent: "unix:)",
                                                                socket, R"(" }
listeners:
  - { name: l1, backlog: 16 }
floods:
  - { name: f1, target: l1, connections: 4, concurrency: 4, connect_timeout: 1s, hold: 3s }
)"));
  const pid_t synq = Spawn({Binary("controller/synq"), "run", scenario, "--out", dir.path()},
                           dir.path() + "/synq.log");
  ASSERT_GT(synq, 0);
  // The flood holds its 4 connections: 8 established sockets (client and accepted ends).
  ASSERT_TRUE(Eventually([&] { return Established(ns) >= 8; }, seconds(20)))
      << "the flood never established its connections";
  ASSERT_EQ(kill(agent, SIGSTOP), 0);
  const auto frozen = std::chrono::steady_clock::now();

  // Collect's wait deadline counts from StartFloods: the 0.3 s start lead + the 4 s budget +
  // the 10 s margin = 14.3 s, and the freeze came after the start. End skips the unresponsive
  // host (no second deadline). 5 s slack for a loaded machine; 60 s would mean no deadline.
  const int code = WaitFor(synq, seconds(60));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen).count();
  std::ifstream in(dir.path() + "/synq.log");
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(code, 3) << log;
  EXPECT_LT(waited, 14.3 + 5) << log;
  EXPECT_NE(log.find("hosts.server: "), std::string::npos) << log;
  EXPECT_NE(log.find(absl::StrCat("agent unix:", socket)), std::string::npos) << log;
  EXPECT_NE(log.find("CollectResults"), std::string::npos) << log;
  EXPECT_NE(log.find("(phase: collect)"), std::string::npos) << log;
  const size_t at = log.find("hosts.server: ");
  std::printf("synq exited 3 %.1f s after the agent froze: %s\n", waited,
              at == std::string::npos ? "" : log.substr(at).c_str());

  // Thawed, the agent sees the cancelled Watch, ends the run (its connections close) and takes
  // the next call.
  ASSERT_EQ(kill(agent, SIGCONT), 0);
  EXPECT_TRUE(Eventually([&] { return Established(ns) == 0; }, seconds(15)))
      << Established(ns) << " sockets still established";
  ProcessResult info = RunProcess({Binary("controller/synq"), "info", "unix:" + socket});
  EXPECT_EQ(info.exit_code, 0) << info.output;
}

}  // namespace
}  // namespace synq::testing
