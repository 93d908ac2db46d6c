// The fault suite (issue 8 item 4): whatever stops a run half way, every sysctl, qdisc, iptables
// rule and tracefs instance an agent changed is back to its original. Each fault is repeated
// kRepetitions times against a run that really changes things (six sysctls, an NFQUEUE delay on
// a veth, a listener and a bounded flood holding its connections); after each repetition the
// namespace's state is read again from inside it (`sysctl -a` net.core/net.ipv4, `tc qdisc show`,
// iptables-save / ip6tables-save, `nft list ruleset` when installed) and must equal the state read
// before the first run, within a bounded wait. A mismatch fails naming the fault, the repetition
// and every differing item. The last line printed is the tally:
//   fault suite: F faults x R repetitions = N, M restored
//
// Network: the agents live in namespaces this test creates, addressed from 198.18.0.0/15 (the
// root namespace routes that range to a blackhole first); every flood is bounded in count and
// time; every namespace, mount and process is removed by a destructor, also on failure.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kRepetitions = 5;
// A listener port fixed inside the test's own namespaces (nothing else lives there), so that the
// test can see the flood's connections with ss.
constexpr int kListenerPort = 9000;
// How long an agent may take to put everything back once it knows the run is over: stop a flood
// of 64 held connections, remove one iptables rule, write six sysctls, remove a trace instance.
// Generous for a shared, noisy 2-core machine; a restore that never comes still fails.
constexpr milliseconds kRestoreAllowance = seconds(10);

// ---- The tally printed at the end ----

struct Tally {
  int faults = 0;
  int repetitions = 0;
  int restored = 0;
  std::vector<std::string> failed;  // "fault: repetition n: why"
  // Per fault, the longest wait from the start of the check (right after the fault; after the
  // agent's exit for SIGTERM, its restart for SIGKILL) to the originals read back (ms).
  std::vector<std::pair<std::string, int64_t>> slowest;
  int64_t last_wait_ms = 0;  // set by WaitRestored
};
Tally& TheTally() {
  static Tally tally;
  return tally;
}

class PrintTally : public ::testing::Environment {
 public:
  void TearDown() override {
    const Tally& t = TheTally();
    std::printf("fault suite: %d faults x %d repetitions = %d, %d restored\n", t.faults,
                kRepetitions, t.repetitions, t.restored);
    for (const auto& [fault, ms] : t.slowest) {
      std::printf("  %-55s originals read back %lld ms after the check began (worst)\n",
                  fault.c_str(), static_cast<long long>(ms));
    }
    for (const auto& f : t.failed) std::printf("  not restored: %s\n", f.c_str());
  }
};
[[maybe_unused]] ::testing::Environment* const kPrintTally =
    ::testing::AddGlobalTestEnvironment(new PrintTally);

// Runs `repetition` kRepetitions times; each returns "" when everything came back, else what did
// not. Repetitions that share a namespace stop at the first failure: it no longer holds its
// originals, so later ones could not tell their own leftovers from this one's. `independent`
// repetitions (each with its own hosts) all run.
void RepeatFault(const std::string& fault, const std::function<std::string(int)>& repetition,
                 bool independent = false) {
  Tally& t = TheTally();
  ++t.faults;
  int64_t slowest = 0;
  for (int i = 1; i <= kRepetitions; ++i) {
    ++t.repetitions;
    t.last_wait_ms = 0;
    const std::string why = repetition(i);
    if (why.empty()) {
      ++t.restored;
      slowest = std::max(slowest, t.last_wait_ms);
      if (i == kRepetitions) t.slowest.emplace_back(fault, slowest);
      continue;
    }
    t.failed.push_back(absl::StrCat(fault, ": repetition ", i, ": ", why.substr(0, 300)));
    ADD_FAILURE() << "fault '" << fault << "', repetition " << i << " of " << kRepetitions << ": "
                  << why;
    if (!independent) {
      // Count what was not run, so the tally still says faults x repetitions.
      t.repetitions += kRepetitions - i;
      return;
    }
  }
}

// ---- Reading the state ----

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Alive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

// Trace instances that count as left behind: new since `before`, and owned by one of `ours` (an
// agent that should have removed it) or by a process that is gone. A live agent of another test
// on this machine keeps its instance and is not ours to judge.
std::vector<std::string> LeftInstances(const std::set<std::string>& before,
                                       const std::vector<pid_t>& ours) {
  std::vector<std::string> out;
  for (const auto& name : SynqTraceInstances()) {
    if (before.contains(name)) continue;
    const pid_t owner = TraceInstanceOwner(name);
    const bool mine = std::find(ours.begin(), ours.end(), owner) != ours.end();
    if (mine || !Alive(owner)) out.push_back(name);
  }
  return out;
}

// Polls until `netns` holds `original` again and no trace instance is left; "" or what differs.
std::string WaitRestored(const std::string& netns, const NetnsState& original,
                         const std::set<std::string>& instances_before,
                         const std::vector<pid_t>& ours, milliseconds limit) {
  std::vector<std::string> diff;
  const auto start = Clock::now();
  PollUntil(
      [&] {
        diff = Differences(original, ReadNetnsState(netns));
        for (const auto& i : LeftInstances(instances_before, ours)) {
          diff.push_back(absl::StrCat("tracefs instance ", i, " left behind"));
        }
        return diff.empty();
      },
      limit);
  TheTally().last_wait_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  if (diff.empty()) return "";
  return absl::StrCat("after ", limit.count(), " ms, in ", netns, ": ", absl::StrJoin(diff, "; "));
}

// ---- Scenarios ----

// Every setting a run changes, each away from its kernel default (somaxconn 4096, syncookies 1,
// abort_on_overflow 0, synack_retries 5, syn_retries 6, max_syn_backlog >= 128).
constexpr char kSettings[] =
    "{ net.core.somaxconn: 7, net.ipv4.tcp_abort_on_overflow: 1, net.ipv4.tcp_synack_retries: 1, "
    "net.ipv4.tcp_syn_retries: 2, net.ipv4.tcp_syncookies: 0, net.ipv4.tcp_max_syn_backlog: 33 }";

// One host `server` reached at `agent`, shaping `interface` with an NFQUEUE delay (this kernel
// has no sch_netem), a listener on kListenerPort and a flood at it: 64 connections at once, of
// which the accept queue holds backlog + 1 = 4 for `hold`; the others' SYNs are dropped on the
// full queue and time out after connect_timeout. Bounded in count (64) and time (1 s + hold).
std::string StandaloneScenario(const std::string& agent, const std::string& interface,
                               const std::string& hold) {
  return absl::StrCat("name: fault\nhosts:\n  server: { agent: \"", agent,
                      "\", interface: ", interface,
                      " }\n"
                      "shaping:\n  - { host: server, delay: 20ms, backend: nfqueue }\n"
                      "settings:\n  server: ",
                      kSettings, "\nlisteners:\n  - { name: l1, port: ", kListenerPort,
                      ", backlog: 3 }\n"
                      "floods:\n  - { name: f1, target: l1, connections: 64, concurrency: 64, "
                      "connect_timeout: 1s, hold: ",
                      hold, " }\n");
}

// True when the namespace shows the run in full swing: the setting written, the NFQUEUE rule in
// place and flood connections established to the listener.
bool RunHolding(const std::string& netns) {
  std::vector<std::string> ns = {"/usr/bin/env", "ip", "netns", "exec", netns};
  auto in_ns = [&](std::vector<std::string> argv) {
    std::vector<std::string> full = ns;
    full.insert(full.end(), argv.begin(), argv.end());
    return RunProcess(full, seconds(10)).output;
  };
  if (absl::StripAsciiWhitespace(in_ns({"cat", "/proc/sys/net/core/somaxconn"})) != "7") {
    return false;
  }
  if (!absl::StrContains(in_ns({"iptables", "-w", "-t", "mangle", "-S"}), "NFQUEUE")) return false;
  return !in_ns({"ss", "-Htn", "state", "established",
                 absl::StrCat("( sport = :", kListenerPort, " )")})
              .empty();
}

// Waits for RunHolding, then checks that the snapshot sees the run's changes (the settings and
// the NFQUEUE rule), so that a comparison after the fault can fail. "" or why not.
std::string WaitHolding(const std::string& netns, const NetnsState& original,
                        const std::function<std::string()>& logs) {
  if (!PollUntil([&] { return RunHolding(netns); }, seconds(20))) {
    return "the run never held its flood: " + logs();
  }
  const std::string diff = absl::StrJoin(Differences(original, ReadNetnsState(netns)), "; ");
  if (!absl::StrContains(diff, "sysctl net.core.somaxconn") ||
      !absl::StrContains(diff, "NFQUEUE")) {
    return "the state read mid-run does not show the run's changes: " + diff;
  }
  return "";
}

bool Applied(const std::string& netns) {
  return absl::StripAsciiWhitespace(RunProcess({"/usr/bin/env", "ip", "netns", "exec", netns, "cat",
                                                "/proc/sys/net/core/somaxconn"})
                                        .output) == "7";
}

// A spawned `synq run`, SIGKILLed by the destructor if still running.
class Controller {
 public:
  // `netns`: run synq inside this namespace ("" = here).
  Controller(const std::string& scenario, const std::string& out, const std::string& netns = "",
             const std::vector<std::string>& extra = {})
      : log_(out + "/synq.log") {
    std::vector<std::string> argv;
    if (!netns.empty()) argv = {"/usr/bin/env", "ip", "netns", "exec", netns};
    argv.insert(argv.end(), {Binary("controller/synq"), "run", scenario, "--out", out});
    argv.insert(argv.end(), extra.begin(), extra.end());
    // `ip netns exec` execs the command in place, so the pid is synq's either way.
    pid_ = Spawn(argv, log_);
  }
  ~Controller() {
    if (pid_ > 0) Signal(SIGKILL, seconds(5));
  }
  pid_t pid() const { return pid_; }
  int Signal(int sig, milliseconds limit) {
    kill(pid_, sig);
    return Wait(limit);
  }
  // Exit code, or -1 when still running after `limit`.
  int Wait(milliseconds limit) {
    if (pid_ <= 0) return code_;
    code_ = WaitFor(pid_, limit);
    if (code_ != -1) pid_ = -1;
    return code_;
  }
  std::string Log() const { return ReadFile(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int code_ = -1;
};

// ---- The namespace a standalone agent runs in ----

class FaultSuite : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: agents run in test network namespaces";
    const std::string blackhole = EnsureBlackhole();
    ASSERT_TRUE(blackhole.empty()) << blackhole;
  }

  // A namespace with a veth pair to shape (v0 198.18.<subnet>.1/24); its state is `original_`.
  void MakeAgentNetns(const std::string& name, int subnet) {
    ns_ = std::make_unique<TestNetns>(name);
    ns_->Exec({"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"});
    ns_->Exec({"ip", "addr", "add", absl::StrCat("198.18.", subnet, ".1/24"), "dev", "v0"});
    ns_->Exec({"ip", "link", "set", "v0", "up"});
    ns_->Exec({"ip", "link", "set", "v1", "up"});
    original_ = ReadNetnsState(ns_->name());
    instances_before_ = SynqTraceInstances();
    ASSERT_FALSE(original_.sysctls.empty()) << "sysctl -a showed no net.core/net.ipv4 key";
    ASSERT_NE(original_.sysctls["net.core.somaxconn"], "7");
  }

  // Starts the standalone agent on a unix socket; returns its address.
  std::string StartUnixAgent() {
    const std::string address = agent_.Start(ns_->name(), "unix:" + dir_.path() + "/agent.sock",
                                             dir_.path() + "/state", dir_.path() + "/agent.log");
    EXPECT_FALSE(address.empty()) << ReadFile(dir_.path() + "/agent.log");
    return address;
  }

  std::string Restored(const std::vector<pid_t>& ours,
                       milliseconds limit = kRestoreAllowance) const {
    return WaitRestored(ns_->name(), original_, instances_before_, ours, limit);
  }

  std::string AgentLog() const { return ReadFile(dir_.path() + "/agent.log"); }
  // A fresh output folder per repetition.
  std::string OutDir(int repetition) const {
    const std::string out = absl::StrCat(dir_.path(), "/out", repetition);
    std::filesystem::create_directories(out);
    return out;
  }

  TempDir dir_;
  std::unique_ptr<TestNetns> ns_;
  NetnsState original_;
  std::set<std::string> instances_before_;
  AgentProcess agent_;
};

// ---- Faults ----

TEST_F(FaultSuite, ControllerSigkillStandaloneAgentRestores) {
  MakeAgentNetns("f-ctl", 40);
  const std::string agent = StartUnixAgent();
  ASSERT_FALSE(agent.empty());
  const std::string scenario = dir_.Write("s.yaml", StandaloneScenario(agent, "v0", "10s"));
  RepeatFault("SIGKILL of the controller (standalone agent)", [&](int i) -> std::string {
    Controller synq(scenario, OutDir(i));
    if (std::string e =
            WaitHolding(ns_->name(), original_, [&] { return synq.Log() + AgentLog(); });
        !e.empty()) {
      return e;
    }
    synq.Signal(SIGKILL, seconds(5));
    // The agent sees its Watch stream break at once and ends the run.
    std::string why = Restored({agent_.pid()});
    if (!agent_.Alive()) why += " (the agent died: " + AgentLog() + ")";
    return why;
  });
}

TEST_F(FaultSuite, AgentSigtermRestoresBeforeExiting) {
  MakeAgentNetns("f-term", 41);
  RepeatFault("SIGTERM of the agent", [&](int i) -> std::string {
    const std::string agent = StartUnixAgent();
    if (agent.empty()) return "agent did not start: " + AgentLog();
    Controller synq(dir_.Write("s.yaml", StandaloneScenario(agent, "v0", "10s")), OutDir(i));
    if (std::string e =
            WaitHolding(ns_->name(), original_, [&] { return synq.Log() + AgentLog(); });
        !e.empty()) {
      return e;
    }
    const pid_t pid = agent_.pid();
    const int code = agent_.Signal(SIGTERM, seconds(15));
    if (code != 0) return absl::StrCat("agent exit ", code, " after SIGTERM: ", AgentLog());
    // The agent restores before it exits: no waiting here.
    std::string why = Restored({pid}, milliseconds(0));
    synq.Wait(seconds(15));
    return why;
  });
}

TEST_F(FaultSuite, AgentSigkillThenRestartRestoresFromJournals) {
  MakeAgentNetns("f-kill", 42);
  RepeatFault("SIGKILL of the agent, restart on the same state dir", [&](int i) -> std::string {
    const std::string agent = StartUnixAgent();
    if (agent.empty()) return "agent did not start: " + AgentLog();
    Controller synq(dir_.Write("s.yaml", StandaloneScenario(agent, "v0", "10s")), OutDir(i));
    if (std::string e =
            WaitHolding(ns_->name(), original_, [&] { return synq.Log() + AgentLog(); });
        !e.empty()) {
      return e;
    }
    const pid_t killed = agent_.pid();
    agent_.Signal(SIGKILL, seconds(5));
    synq.Signal(SIGKILL, seconds(5));
    // A SIGKILLed agent restores nothing: the changes are still there (or the fault proved
    // nothing).
    if (!Applied(ns_->name())) return "the settings were gone before the restart";
    if (StartUnixAgent().empty()) return "restarted agent did not start: " + AgentLog();
    // The restart restores from its journals before it serves, and sweeps the dead agent's
    // trace instance; `killed` is gone, so its instance counts as left if still there.
    std::string why = Restored({agent_.pid(), killed}, milliseconds(0));
    agent_.Signal(SIGTERM, seconds(10));
    return why.empty() ? "" : why + "; agent log: " + AgentLog();
  });
}

TEST_F(FaultSuite, AgentFrozenPastItsLeaseRestoresWhenThawed) {
  MakeAgentNetns("f-stop", 43);
  const std::string agent = StartUnixAgent();
  ASSERT_FALSE(agent.empty());
  const std::string scenario = dir_.Write("s.yaml", StandaloneScenario(agent, "v0", "10s"));
  // The run's lease: long enough for BeginRun .. floods holding (about 1 s here), shorter than
  // the hold, so only the lease can end the run while the agent is frozen.
  const milliseconds lease = seconds(3);
  RepeatFault("SIGSTOP of the agent past its lease, then SIGCONT", [&](int i) -> std::string {
    Controller synq(scenario, OutDir(i), "", {"--lease", "3s"});
    if (std::string e =
            WaitHolding(ns_->name(), original_, [&] { return synq.Log() + AgentLog(); });
        !e.empty()) {
      return e;
    }
    // BeginRun came before the settings it allowed, so the lease ends before seen + lease.
    const auto seen = Clock::now();
    agent_.Freeze();
    std::this_thread::sleep_until(seen + lease + milliseconds(500));
    const bool still_applied = Applied(ns_->name());
    agent_.Thaw();
    if (!still_applied) return "the settings were restored while the agent was frozen";
    std::string why = Restored({agent_.pid()});
    synq.Wait(seconds(15));
    return why;
  });
}

TEST_F(FaultSuite, ControlConnectionCutRestoresAfterTheLease) {
  MakeAgentNetns("f-cut", 44);
  // The controller runs in a namespace of its own, reaching the agent over a veth
  // (198.18.45.2 -> 198.18.45.1); the cut is a DROP there, so the agent's namespace keeps only
  // what the agent itself changes.
  TestNetns ctl("f-cutc");
  ns_->Exec({"ip", "link", "add", "c0", "type", "veth", "peer", "name", "c1", "netns", ctl.name()});
  ns_->Exec({"ip", "addr", "add", "198.18.45.1/30", "dev", "c0"});
  ns_->Exec({"ip", "link", "set", "c0", "up"});
  ctl.Exec({"ip", "addr", "add", "198.18.45.2/30", "dev", "c1"});
  ctl.Exec({"ip", "link", "set", "c1", "up"});
  original_ = ReadNetnsState(ns_->name());
  const std::string agent = agent_.Start(ns_->name(), "198.18.45.1:0", dir_.path() + "/state",
                                         dir_.path() + "/agent.log");
  ASSERT_FALSE(agent.empty()) << AgentLog();
  const std::string port = agent.substr(agent.rfind(':') + 1);
  const std::string scenario = dir_.Write("s.yaml", StandaloneScenario(agent, "v0", "10s"));
  // As above: a lease that covers the set-up (about 1 s) but not the hold. With the packets
  // dropped nothing reaches the agent, so only its lease can end the run: the wait is the lease
  // from the moment the settings were seen, plus the restore allowance.
  const milliseconds lease = seconds(4);
  const std::vector<std::string> drop_in = {"iptables", "-w", "INPUT", "-p",  "tcp",
                                            "--sport",  port, "-j",    "DROP"};
  const std::vector<std::string> drop_out = {"iptables", "-w", "OUTPUT", "-p",  "tcp",
                                             "--dport",  port, "-j",     "DROP"};
  auto rule = [](const char* op, std::vector<std::string> spec) {
    spec.insert(spec.begin() + 2, op);
    return spec;
  };
  RepeatFault("control connection cut (packets dropped)", [&](int i) -> std::string {
    Controller synq(scenario, OutDir(i), ctl.name(), {"--lease", "4s"});
    if (std::string e =
            WaitHolding(ns_->name(), original_, [&] { return synq.Log() + AgentLog(); });
        !e.empty()) {
      return e;
    }
    const auto seen = Clock::now();
    ProcessResult in = ctl.Run(rule("-I", drop_in));
    ProcessResult out = ctl.Run(rule("-I", drop_out));
    if (in.exit_code != 0 || out.exit_code != 0) return "iptables DROP: " + in.output + out.output;
    std::string why;
    if (!Applied(ns_->name())) why = "the run had ended before the cut; ";
    const auto limit =
        std::chrono::duration_cast<milliseconds>(seen + lease + kRestoreAllowance - Clock::now());
    why += Restored({agent_.pid()}, limit);
    synq.Signal(SIGKILL, seconds(5));
    ctl.Run(rule("-D", drop_in));
    ctl.Run(rule("-D", drop_out));
    if (!agent_.Alive()) why += " (the agent died)";
    return why.empty() ? "" : why + "; agent log: " + AgentLog();
  });
}

TEST_F(FaultSuite, TwoControllersRacingOneIsRefusedOtherCompletes) {
  MakeAgentNetns("f-race", 46);
  const std::string agent = StartUnixAgent();
  ASSERT_FALSE(agent.empty());
  // A short hold: the winner's run completes by itself (about 3 s, far longer than the few
  // milliseconds between the two BeginRuns).
  const std::string scenario = dir_.Write("s.yaml", StandaloneScenario(agent, "v0", "1500ms"));
  RepeatFault("two controllers racing for one agent", [&](int i) -> std::string {
    const std::string out_a = OutDir(i * 10 + 1);
    const std::string out_b = OutDir(i * 10 + 2);
    Controller a(scenario, out_a);
    Controller b(scenario, out_b);
    const int code_a = a.Wait(seconds(60));
    const int code_b = b.Wait(seconds(60));
    const bool one_each = (code_a == 0 && code_b == 3) || (code_a == 3 && code_b == 0);
    if (!one_each) {
      return absl::StrCat("exit codes ", code_a, " and ", code_b,
                          " (want one 0, one 3): A: ", a.Log(), " B: ", b.Log());
    }
    const std::string winner = code_a == 0 ? out_a : out_b;
    if (!std::filesystem::exists(winner + "/result.json")) return "the winner wrote no result";
    return Restored({agent_.pid()});
  });
}

// A tmpfs of 256 KiB for the state dir, full or read-only before the run begins.
class StateDirFault : public FaultSuite {
 protected:
  void Run(const std::string& fault, int subnet, bool read_only) {
    MakeAgentNetns(read_only ? "f-ro" : "f-full", subnet);
    TmpfsMount state(dir_.path() + "/state", 256 * 1024);
    ASSERT_EQ(state.error(), "");
    const std::string agent = StartUnixAgent();
    ASSERT_FALSE(agent.empty());
    if (read_only) {
      ASSERT_EQ(state.SetReadOnly(true), "");
    } else {
      ASSERT_GT(state.Fill(), 0u);
    }
    const std::string scenario = dir_.Write("s.yaml", StandaloneScenario(agent, "v0", "1s"));
    const char* reason = read_only ? "Read-only file system" : "No space left on device";
    RepeatFault(fault, [&](int i) -> std::string {
      SynqRun r = RunSynq(scenario, OutDir(i));
      std::string why;
      if (r.exit_code != 3) why = absl::StrCat("exit ", r.exit_code, " (want 3); ");
      // A clear error: the host, and the reason the kernel gave for the state dir.
      if (!absl::StrContains(r.output, "server: agent") || !absl::StrContains(r.output, reason)) {
        why += absl::StrCat("the error does not name the host (server) and '", reason,
                            "': ", r.output, "; ");
      }
      // Nothing changed: no waiting, the refusal came before any change.
      const std::string restored = Restored({agent_.pid()}, milliseconds(0));
      return restored.empty() && why.empty() ? "" : why + restored;
    });
    // Once the disk is usable again the same agent runs and restores as usual.
    if (read_only) {
      ASSERT_EQ(state.SetReadOnly(false), "");
    } else {
      std::filesystem::remove(dir_.path() + "/state/fill");
    }
    SynqRun r = RunSynq(scenario, OutDir(99));
    EXPECT_EQ(r.exit_code, 0) << r.output << AgentLog();
    EXPECT_EQ(Restored({agent_.pid()}), "");
    agent_.Signal(SIGTERM, seconds(10));
  }
};

TEST_F(StateDirFault, FullDiskRefusesTheRunAndChangesNothing) {
  Run("state dir disk full when the run begins", 47, false);
}

TEST_F(StateDirFault, ReadOnlyStateDirRefusesTheRunAndChangesNothing) {
  Run("state dir read-only when the run begins", 48, true);
}

// ---- Embedded hosts ----

// `synq lab up` hosts: namespaces and agents that outlive a run, so a killed controller leaves
// their restore to the agents, and the namespaces are there to be read afterwards.
TEST_F(FaultSuite, ControllerSigkillLabAgentsRestore) {
  if (!SynqNamespaces().empty()) {
    for (const auto& ns : SynqNamespaces()) {
      if (ns.rfind("synq-lab-", 0) == 0) GTEST_SKIP() << "a synq lab is already up: " << ns;
    }
  }
  const std::string lab = dir_.Write("lab.yaml", "name: lab\nhosts: { server: {}, client: {} }\n");
  ProcessResult up = RunProcess({Binary("controller/synq"), "lab", "up", lab}, seconds(60));
  struct Down {
    ~Down() { RunProcess({Binary("controller/synq"), "lab", "down"}, seconds(60)); }
  } down_on_exit;
  ASSERT_EQ(up.exit_code, 0) << up.output;
  const std::vector<std::string> hosts = {"synq-lab-server", "synq-lab-client"};
  std::map<std::string, NetnsState> original;
  for (const auto& h : hosts) original[h] = ReadNetnsState(h);
  const std::set<std::string> instances = SynqTraceInstances();
  // The lab's agents (their state dirs are under /run/synq/lab/): instances of theirs must go.
  const std::vector<pid_t> lab_agents = PidsWithCommandLine("/run/synq/lab/");
  const std::string scenario = dir_.Write("s.yaml", absl::StrCat(R"(name: fault-lab
hosts:
  server: { agent: "unix:/run/synq/lab/server/agent.sock", interface: eth0 }
  client: { agent: "unix:/run/synq/lab/client/agent.sock", interface: eth0 }
shaping:
  - { host: server, delay: 20ms, backend: nfqueue }
settings:
  server: )",
                                                                 kSettings, R"(
listeners:
  - { name: l1, host: server, port: )",
                                                                 kListenerPort, R"(, backlog: 3 }
floods:
  - { name: f1, host: client, target: l1, connections: 64, concurrency: 64, connect_timeout: 1s, hold: 10s }
)"));
  RepeatFault("SIGKILL of the controller (lab agents)", [&](int i) -> std::string {
    Controller synq(scenario, OutDir(i));
    if (std::string e =
            WaitHolding("synq-lab-server", original["synq-lab-server"], [&] { return synq.Log(); });
        !e.empty()) {
      return e;
    }
    synq.Signal(SIGKILL, seconds(5));
    std::string why;
    for (const auto& h : hosts) {
      why += WaitRestored(h, original[h], instances, lab_agents, kRestoreAllowance);
    }
    return why;
  });
}

// Hosts that live only as long as the run: a SIGKILLed controller's reaper removes their
// namespaces (and with them every setting and rule in them). What outlives namespaces must go
// too: the agents' trace instances (kernel-wide) and the run's state dir /run/synq/run-<pid>.
TEST_F(FaultSuite, ControllerSigkillEmbeddedHostsLeaveNothing) {
  const std::string scenario = dir_.Write("s.yaml", absl::StrCat(R"(name: fault-embedded
hosts: { server: {}, client: {} }
shaping:
  - { host: server, delay: 20ms, backend: nfqueue }
settings:
  server: )",
                                                                 kSettings, R"(
listeners:
  - { name: l1, host: server, port: )",
                                                                 kListenerPort, R"(, backlog: 3 }
floods:
  - { name: f1, host: client, target: l1, connections: 64, concurrency: 64, connect_timeout: 1s, hold: 10s }
)"));
  const std::set<std::string> instances = SynqTraceInstances();
  RepeatFault(
      "SIGKILL of the controller (embedded hosts)",
      [&](int i) -> std::string {
        Controller synq(scenario, OutDir(i));
        const std::string prefix = absl::StrCat("synq-", synq.pid(), "-");
        const std::string server = prefix + "server";
        auto count = [&] {
          int n = 0;
          for (const auto& ns : SynqNamespaces()) n += ns.rfind(prefix, 0) == 0 ? 1 : 0;
          return n;
        };
        if (!PollUntil([&] { return count() == 3 && RunHolding(server); }, seconds(20))) {
          return absl::StrCat("the run never held its flood: ", synq.Log());
        }
        const pid_t pid = synq.pid();
        synq.Signal(SIGKILL, seconds(5));
        const auto killed = Clock::now();
        std::vector<std::string> left;
        const std::string run_dir = absl::StrCat("/run/synq/run-", pid);
        PollUntil(
            [&] {
              left.clear();
              if (count() != 0) left.push_back(absl::StrCat(count(), " namespaces ", prefix, "*"));
              for (const auto& name : LeftInstances(instances, {})) {
                left.push_back("tracefs instance " + name);
              }
              if (std::filesystem::exists(run_dir)) left.push_back(run_dir);
              return left.empty();
            },
            seconds(15));
        TheTally().last_wait_ms =
            std::chrono::duration_cast<milliseconds>(Clock::now() - killed).count();
        // What this test caused, it removes (after recording it), so that CI hosts do not pile up.
        std::error_code ec;
        std::filesystem::remove_all(run_dir, ec);
        return left.empty() ? "" : "left after 15 s: " + absl::StrJoin(left, ", ");
      },
      /*independent=*/true);
}

}  // namespace
}  // namespace synq::testing
