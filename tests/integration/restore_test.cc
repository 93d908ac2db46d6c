// Proves that nothing an agent changes outlives the run: settings come back and shaping (the
// NFQUEUE rule) goes away when the controller is killed mid-run, when the agent gets SIGTERM, and
// (from its journals) when a crashed agent starts again; embedded hosts' namespaces go away even
// when synq is SIGKILLed; a crashed agent's journals are restored only in their own namespace (an
// agent started elsewhere on the same state dir keeps them and refuses runs, saying why), and its
// trace instance is gone after the next start; bad input (a setting outside the agent's catalog
// range included) and unreachable agents are clear errors with the documented exit codes.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

const std::vector<std::string> kKeys = {
    "net.core.somaxconn",       "net.ipv4.tcp_abort_on_overflow", "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_syncookies",        "net.ipv4.tcp_max_syn_backlog"};

std::map<std::string, long> ReadAll(const TestNetns& ns) {
  std::map<std::string, long> out;
  for (const auto& k : kKeys) out[k] = ns.Sysctl(k);
  return out;
}

// Polls until `pred` holds or `limit` passes.
template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

class Restore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: the agent runs in a test network namespace";
    ns_ = std::make_unique<TestNetns>("restore");
    // An interface to shape: a veth pair inside the namespace (no dummy module everywhere).
    ns_->Exec({"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"});
    ns_->Exec({"ip", "addr", "add", "198.18.1.1/24", "dev", "v0"});
    ns_->Exec({"ip", "link", "set", "v0", "up"});
    ns_->Exec({"ip", "link", "set", "v1", "up"});
    original_ = ReadAll(*ns_);
    ASSERT_FALSE(Shaped());
    socket_ = dir_.path() + "/agent.sock";
    StartAgent();
    // Every setting changed, a listener and a flood that holds for long enough to be killed.
    scenario_ = dir_.Write("s.yaml", absl::StrCat(R"(name: restore
hosts:
  server: { agent: "unix:)",
                                                  socket_, R"(", interface: v0 }
shaping:
  - { host: server, delay: 50ms, backend: nfqueue }
settings:
  server: { net.core.somaxconn: 7, net.ipv4.tcp_abort_on_overflow: 1,
            net.ipv4.tcp_synack_retries: 1, net.ipv4.tcp_syn_retries: 2,
            net.ipv4.tcp_syncookies: 0, net.ipv4.tcp_max_syn_backlog: 33 }
listeners:
  - { name: l1, backlog: 3 }
floods:
  - { name: f1, target: l1, connections: 4, hold: 30s }
)"));
    ASSERT_NE(original_["net.core.somaxconn"], 7);
  }
  void TearDown() override {
    if (agent_ > 0) {
      kill(agent_, SIGKILL);
      WaitFor(agent_, std::chrono::seconds(5));
    }
    ns_.reset();
  }
  bool Shaped() const {
    return ns_->Exec({"iptables", "-w", "-t", "mangle", "-S"}).find("NFQUEUE") != std::string::npos;
  }
  void StartAgent() { StartAgentIn(ns_->name()); }
  void StartAgentIn(const std::string& netns) {
    std::filesystem::remove(dir_.path() + "/addr");
    agent_ = Spawn({Binary("agent/synq-agent"), "--netns", netns, "--listen", "unix:" + socket_,
                    "--state-dir", dir_.path() + "/state", "--port-file", dir_.path() + "/addr"},
                   dir_.path() + "/agent.log");
    ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(dir_.path() + "/addr"); },
                           std::chrono::seconds(10)));
  }
  // Starts synq on the scenario and waits until the agent has applied the settings.
  pid_t StartRunAndWaitForSettings() {
    const pid_t synq = Spawn({Binary("controller/synq"), "run", scenario_, "--out", dir_.path()},
                             dir_.path() + "/synq.log");
    EXPECT_TRUE(Eventually([&] { return ns_->Sysctl("net.core.somaxconn") == 7; },
                           std::chrono::seconds(15)));
    EXPECT_EQ(ns_->Sysctl("net.ipv4.tcp_max_syn_backlog"), 33);
    EXPECT_TRUE(Eventually([&] { return Shaped(); }, std::chrono::seconds(10)));
    return synq;
  }

  TempDir dir_;
  std::unique_ptr<TestNetns> ns_;
  std::map<std::string, long> original_;
  std::string socket_;
  std::string scenario_;
  pid_t agent_ = -1;
};

TEST_F(Restore, NormalRunEndsWithEverySettingRestoredAndNoShaping) {
  // The same scenario with a short hold, run to completion.
  std::ifstream in(scenario_);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text.replace(text.find("hold: 30s"), 9, "hold: 200ms");
  SynqRun r = RunSynq(dir_.Write("short.yaml", text), dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto& server = r.result["runs"][0]["hosts"]["server"];
  EXPECT_EQ(server["settings"]["net.core.somaxconn"].get<int>(), 7) << "applied during the run";
  EXPECT_EQ(server["shaping"][0]["backend"], "nfqueue");
  EXPECT_EQ(server["shaping"][0]["delay_ms"].get<double>(), 50.0);
  EXPECT_EQ(ReadAll(*ns_), original_);
  EXPECT_FALSE(Shaped());
}

TEST_F(Restore, ControllerKilledMidRunAgentRestoresEverySetting) {
  const pid_t synq = StartRunAndWaitForSettings();
  kill(synq, SIGKILL);
  WaitFor(synq, std::chrono::seconds(5));
  EXPECT_TRUE(Eventually([&] { return ReadAll(*ns_) == original_; }, std::chrono::seconds(10)));
  EXPECT_FALSE(Shaped());
  // The agent survives and takes the next run.
  EXPECT_EQ(WaitFor(agent_, std::chrono::milliseconds(10)), -1) << "agent died";
  ProcessResult info = RunProcess({Binary("controller/synq"), "info", "unix:" + socket_});
  EXPECT_EQ(info.exit_code, 0) << info.output;
}

TEST_F(Restore, AgentSigtermMidRunRestoresEverySetting) {
  const pid_t synq = StartRunAndWaitForSettings();
  kill(agent_, SIGTERM);
  EXPECT_EQ(WaitFor(agent_, std::chrono::seconds(10)), 0);
  agent_ = -1;
  EXPECT_EQ(ReadAll(*ns_), original_);
  EXPECT_FALSE(Shaped());
  // The controller reports the lost agent as a host failure.
  EXPECT_EQ(WaitFor(synq, std::chrono::seconds(60)), 3);
}

// Trace instances named after `pid` ("synq-<pid>-<n>"), kernel-wide.
std::vector<std::string> TraceInstancesOf(pid_t pid) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/kernel/tracing/instances", ec)) {
    const std::string name = e.path().filename();
    if (name.rfind(absl::StrCat("synq-", pid, "-"), 0) == 0) names.push_back(name);
  }
  return names;
}

TEST_F(Restore, CrashedAgentRestoresFromItsJournalAtNextStart) {
  const pid_t synq = StartRunAndWaitForSettings();
  const pid_t crashed = agent_;
  kill(agent_, SIGKILL);
  agent_ = -1;
  kill(synq, SIGKILL);
  WaitFor(synq, std::chrono::seconds(5));
  EXPECT_EQ(ns_->Sysctl("net.core.somaxconn"), 7) << "a SIGKILLed agent cannot restore";
  EXPECT_TRUE(Shaped());
  // The crashed agent is left unreaped (a zombie) while the next one starts: its trace instance
  // must go all the same.
  const size_t left = TraceInstancesOf(crashed).size();
  std::printf("trace instances of the SIGKILLed agent: %zu before the next start\n", left);
  StartAgent();
  EXPECT_EQ(ReadAll(*ns_), original_);
  EXPECT_FALSE(Shaped());
  EXPECT_EQ(TraceInstancesOf(crashed), std::vector<std::string>{}) << "after the next start";
  WaitFor(crashed, std::chrono::seconds(5));
}

// An agent restarted on the same state dir in another namespace must not "restore" there values
// that were never changed, nor lose the journal: it keeps it, refuses runs and says why; back in
// the right namespace, it restores.
TEST_F(Restore, JournalOfAnotherNamespaceIsKeptAndTheAgentRefusesRuns) {
  const pid_t synq = StartRunAndWaitForSettings();
  kill(agent_, SIGKILL);
  WaitFor(agent_, std::chrono::seconds(5));
  agent_ = -1;
  kill(synq, SIGKILL);
  WaitFor(synq, std::chrono::seconds(5));
  TestNetns other("restore-other");
  const std::map<std::string, long> other_before = ReadAll(other);
  StartAgentIn(other.name());
  EXPECT_EQ(ReadAll(other), other_before) << "values written into a namespace never changed";
  EXPECT_EQ(ns_->Sysctl("net.core.somaxconn"), 7) << "still the crashed run's";
  EXPECT_TRUE(std::filesystem::exists(dir_.path() + "/state/settings-journal.json"));
  EXPECT_TRUE(std::filesystem::exists(dir_.path() + "/state/shaping-journal.json"));
  ProcessResult info = RunProcess({Binary("controller/synq"), "info", "unix:" + socket_});
  EXPECT_NE(info.output.find("REFUSES RUNS"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("network namespace"), std::string::npos) << info.output;
  SynqRun refused = RunSynq(scenario_, dir_.path());
  EXPECT_EQ(refused.exit_code, 3) << refused.output;
  EXPECT_NE(refused.output.find("refuses runs"), std::string::npos) << refused.output;

  kill(agent_, SIGTERM);
  WaitFor(agent_, std::chrono::seconds(10));
  StartAgent();
  EXPECT_EQ(ReadAll(*ns_), original_);
  EXPECT_FALSE(Shaped());
}

// Keys and ranges are the agent's: tcp_syncookies takes 0, 1 or 2 (the kernel's proc handler
// bounds it to [0, 2]), so 3 is bad input (exit 2) found once the agent answers, before anything
// is changed.
TEST_F(Restore, SettingOutsideTheAgentsRangeIsExitTwoNamingPathValueAndRange) {
  const std::string scenario = dir_.Write("range.yaml", absl::StrCat(R"(name: range
hosts:
  server: { agent: "unix:)",
                                                                     socket_, R"(" }
settings:
  server: { net.ipv4.tcp_syncookies: 3, net.core.somaxconn: 7 }
)"));
  SynqRun r = RunSynq(scenario, dir_.path());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("settings.server.net.ipv4.tcp_syncookies: 3 is out of range [0, 2]"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(ReadAll(*ns_), original_) << "nothing applied";
}

// An embedded two-host run that holds its connections for 30 s, started in the background.
class EmbeddedRun {
 public:
  EmbeddedRun() {
    const std::string scenario = dir_.Write("s.yaml", R"(name: interrupted
hosts: { server: {}, client: {} }
listeners: [ { name: l1, host: server, backlog: 3 } ]
floods: [ { name: f1, host: client, target: l1, connections: 4, hold: 30s } ]
)");
    pid_ = Spawn({Binary("controller/synq"), "run", scenario, "--out", dir_.path()},
                 dir_.path() + "/synq.log");
  }
  ~EmbeddedRun() {
    if (!reaped_) Signal(SIGKILL, std::chrono::seconds(5));
  }
  // Sends `sig` and waits for synq to exit; returns its exit code (-1 if still running).
  int Signal(int sig, std::chrono::milliseconds limit) {
    kill(pid_, sig);
    const int code = WaitFor(pid_, limit);
    reaped_ = code != -1;
    return code;
  }
  // How many of this run's namespaces (hub + 2 hosts) exist.
  int Namespaces() const {
    const std::string prefix = absl::StrCat("synq-", pid_, "-");
    int n = 0;
    for (const auto& ns : SynqNamespaces()) n += ns.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }
  // Waits until the hosts are up and the floods are holding.
  bool WaitUntilHolding() const {
    if (!Eventually([&] { return Namespaces() == 3; }, std::chrono::seconds(15))) return false;
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return true;
  }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

TEST(EmbeddedHosts, NamespacesAreGoneAfterControllerIsKilledMidRun) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  EmbeddedRun run;
  ASSERT_TRUE(run.WaitUntilHolding());
  run.Signal(SIGKILL, std::chrono::seconds(5));
  EXPECT_TRUE(Eventually([&] { return run.Namespaces() == 0; }, std::chrono::seconds(15)));
}

TEST(EmbeddedHosts, NormalRunLeavesNothingBehind) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TempDir dir;
  const auto before = SynqNamespaces();
  SynqRun r = RunSynq(Source("examples/single-host.yaml"), dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(SynqNamespaces(), before);
  const auto& f1 = r.result["runs"][0]["floods"]["f1"];
  EXPECT_EQ(f1["established"].get<int>(), 200);
  EXPECT_EQ(r.result["runs"][0]["listeners"]["l1"]["accepted"].get<int>(), 200);
}

TEST(EmbeddedHosts, CtrlCRemovesNamespacesAndExits) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  EmbeddedRun run;
  ASSERT_TRUE(run.WaitUntilHolding());
  EXPECT_EQ(run.Signal(SIGINT, std::chrono::seconds(20)), 128 + SIGINT);
  EXPECT_EQ(run.Namespaces(), 0) << "namespaces must be gone when synq exits";
}

TEST(BadInput, PortInUseIsAHostFailureNamingTheListener) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TempDir dir;
  const std::string scenario = dir.Write("s.yaml", R"(name: port-in-use
listeners:
  - { name: first, port: 7777 }
  - { name: second, port: 7777 }
floods: [ { name: f1, target: first } ]
)");
  SynqRun r = RunSynq(scenario, dir.path());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("listeners.second"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
  ASSERT_TRUE(r.result.is_object()) << "the failed run is still reported";
  EXPECT_FALSE(r.result["runs"][0]["errors"].empty());
}

// 5,000,000 connections held towards one listener: past the fd limit the agent would spread them
// over worker processes, but 5,000,000 (address, port) pairs towards one destination cannot exist
// with one source address (ip_local_port_range holds at most 64,512 ports), so the agent's
// up-front budget refuses the flood naming the need, the supply and what to change.
TEST(BadInput, FloodThatCannotFitIsRefusedUpFrontWithTheFigures) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TempDir dir;
  const std::string scenario = dir.Write("s.yaml", R"(name: too-many
listeners: [ { name: l1, backlog: 16 } ]
floods: [ { name: f1, target: l1, connections: 5000000, concurrency: 64 } ]
)");
  SynqRun r = RunSynq(scenario, dir.path());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("needs 5000000 source ports"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("usable ports"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ip_local_port_range"), std::string::npos) << r.output;
}

TEST(BadInput, UnreachableAgentIsExitThreeNamingTheHost) {
  TempDir dir;
  const std::string scenario = dir.Write("s.yaml", R"(name: unreachable
hosts: { far: { agent: "unix:/nonexistent/agent.sock" } }
listeners: [ { name: l1 } ]
floods: [ { name: f1, target: l1 } ]
)");
  SynqRun r = RunSynq(scenario, dir.path());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.output.find("hosts.far"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unreachable"), std::string::npos) << r.output;
}

TEST(BadInput, InvalidScenarioIsExitTwoListingEveryError) {
  TempDir dir;
  const std::string scenario = dir.Write("s.yaml", R"(name: broken
listeners: [ { name: l1, backlog: many } ]
floods: [ { name: f1, target: l9, connections: -3 } ]
)");
  ProcessResult v = RunProcess({Binary("controller/synq"), "validate", scenario});
  EXPECT_EQ(v.exit_code, 2);
  EXPECT_NE(v.output.find("listeners.l1.backlog"), std::string::npos) << v.output;
  EXPECT_NE(v.output.find("floods.f1.target"), std::string::npos) << v.output;
  EXPECT_NE(v.output.find("floods.f1.connections"), std::string::npos) << v.output;
  SynqRun r = RunSynq(scenario, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.result.is_null()) << "no result for a scenario that never ran";
}

}  // namespace
}  // namespace synq::testing
