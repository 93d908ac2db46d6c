// Proves every diagnosis rule on real runs of the real `synq` with real agents in network
// namespaces: each test writes a small scenario whose kernel mechanism forces one outcome,
// reads result.json with ReadResultFile, diagnoses each run and checks the rule ids and the
// figures cited, derived from the mechanism (not from the code under test). Kept short in wall
// time: small floods, short holds, few retries.
#include "controller/verdict/diagnosis.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "controller/result/result_json.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

namespace v1 = ::synq::result::v1;
using controller::verdict::Diagnose;
using controller::verdict::RenderDiagnosis;

struct DiagnosedRun {
  v1::Run run;
  std::vector<v1::Finding> findings;
  std::string text;  // RenderDiagnosis, printed for the log
};

// Runs `synq run` on the scenario and diagnoses every run; the diagnosis stored in result.json
// is preferred once `synq run` writes it.
std::vector<DiagnosedRun> RunAndDiagnose(const std::string& scenario, const TempDir& out,
                                         size_t expected_runs, int expected_exit = 0) {
  SynqRun r = RunSynq(scenario, out.path());
  EXPECT_EQ(r.exit_code, expected_exit) << r.output;
  absl::StatusOr<v1::Result> result =
      controller::result::ReadResultFile(out.path() + "/result.json");
  EXPECT_TRUE(result.ok()) << result.status() << "\n" << r.output;
  if (!result.ok()) return {};
  EXPECT_EQ(static_cast<size_t>(result->runs_size()), expected_runs) << r.output;
  std::vector<DiagnosedRun> out_runs;
  for (const v1::Run& run : result->runs()) {
    DiagnosedRun d;
    d.run = run;
    // The diagnosis as synq run wrote it into result.json, which is what users read.
    EXPECT_GT(run.diagnosis_size(), 0) << "synq run keeps every run's diagnosis";
    d.findings.assign(run.diagnosis().begin(), run.diagnosis().end());
    d.text = RenderDiagnosis(run);
    std::printf("%s", d.text.c_str());
    out_runs.push_back(std::move(d));
  }
  return out_runs;
}

const v1::Finding* Find(const std::vector<v1::Finding>& findings, const std::string& rule,
                        const std::string& flood = "") {
  for (const v1::Finding& f : findings) {
    if (f.rule() == rule && (flood.empty() || f.flood() == flood)) return &f;
  }
  return nullptr;
}

std::set<std::string> Rules(const std::vector<v1::Finding>& findings) {
  std::set<std::string> rules;
  for (const v1::Finding& f : findings) rules.insert(f.rule());
  return rules;
}

std::optional<double> Evidence(const v1::Finding& finding, const std::string& name) {
  for (const v1::Evidence& e : finding.evidence()) {
    if (e.name() == name) return e.value();
  }
  return std::nullopt;
}

double Counter(const v1::Run& run, const std::string& host, const std::string& name) {
  const auto& counters = run.hosts().at(host).counters();
  auto it = counters.find(name);
  return it == counters.end() ? 0 : it->second;
}

int ParamInt(const v1::Run& run, const std::string& key) {
  return static_cast<int>(run.params().at(key).number_value());
}

// Every figure a finding cites must be the figure in the result it names; spot-checked for the
// paths the tests read.
#define EXPECT_CITES(finding, name, value)                                           \
  do {                                                                               \
    const std::optional<double> cited = Evidence(finding, name);                     \
    ASSERT_TRUE(cited.has_value()) << name << " not cited in: " << (finding).text(); \
    EXPECT_DOUBLE_EQ(*cited, value) << name << " in: " << (finding).text();          \
  } while (0)

class Diagnosis : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: hosts are network namespaces";
  }
  TempDir out_;
};

TEST_F(Diagnosis, SomaxconnCapNegativeAndZeroBacklogAndAcceptQueueOverflow) {
  // somaxconn 4; a never-accepting listener holds backlog_effective + 1 connections and the
  // kernel drops SYNs beyond that (TcpExtListenOverflows). One connect at a time, each timing
  // out after 500 ms, so every extra SYN (and its retransmit) is counted as an overflow.
  //   backlog 100: capped to somaxconn 4 -> 5 established, 1 timed out.
  //   backlog -1:  listen(-1) takes somaxconn 4 -> 5 established, 1 timed out.
  //   backlog 0:   effective 0 -> 1 established, 5 timed out.
  const std::string scenario = out_.Write("cap.yaml", R"(name: diag-cap
hosts: { server: {}, client: {} }
settings:
  server: { net.core.somaxconn: 4 }
listeners:
  - { name: l1, host: server, backlog: 100, accept: never }
floods:
  - { name: f1, host: client, target: l1, connections: 6, concurrency: 1,
      connect_timeout: 500ms, hold: 200ms }
sweep:
  listeners.l1.backlog: [100, -1, 0]
)");
  const std::vector<DiagnosedRun> runs = RunAndDiagnose(scenario, out_, 3);
  ASSERT_EQ(runs.size(), 3u);
  for (const DiagnosedRun& d : runs) {
    const int backlog = ParamInt(d.run, "listeners.l1.backlog");
    SCOPED_TRACE(absl::StrCat("backlog ", backlog));
    const int effective = backlog == 0 ? 0 : 4;
    const int established = effective + 1;
    const v1::Flood& f1 = d.run.floods().at("f1");
    ASSERT_EQ(f1.established(), static_cast<uint32_t>(established));
    ASSERT_EQ(f1.timed_out(), static_cast<uint32_t>(6 - established));

    if (backlog == 100) {
      const v1::Finding* cap = Find(d.findings, controller::verdict::kRuleSomaxconnCap);
      ASSERT_NE(cap, nullptr) << d.text;
      EXPECT_NE(cap->text().find("backlog 100 was capped to 4 by net.core.somaxconn"),
                std::string::npos)
          << cap->text();
      EXPECT_CITES(*cap, "listeners.l1.backlog", 100);
      EXPECT_CITES(*cap, "listeners.l1.backlog_effective", 4);
      EXPECT_CITES(*cap, "hosts.server.settings.net.core.somaxconn", 4);
      EXPECT_NE(cap->remedy().find("net.core.somaxconn"), std::string::npos);
      EXPECT_EQ(cap->listener(), "l1");
    } else {
      EXPECT_EQ(Find(d.findings, controller::verdict::kRuleSomaxconnCap), nullptr) << d.text;
    }
    if (backlog == -1) {
      const v1::Finding* neg = Find(d.findings, controller::verdict::kRuleBacklogNegative);
      ASSERT_NE(neg, nullptr) << d.text;
      EXPECT_CITES(*neg, "listeners.l1.backlog_effective", 4);
    } else {
      EXPECT_EQ(Find(d.findings, controller::verdict::kRuleBacklogNegative), nullptr) << d.text;
    }

    const v1::Finding* overflow = Find(d.findings, controller::verdict::kRuleAcceptQueueOverflow);
    ASSERT_NE(overflow, nullptr) << d.text;
    const double overflows = Counter(d.run, "server", "TcpExtListenOverflows");
    // At least one SYN per timed-out connect found the queue full.
    EXPECT_GE(overflows, 6 - established);
    EXPECT_CITES(*overflow, "hosts.server.counters.TcpExtListenOverflows", overflows);
    EXPECT_CITES(*overflow, "listeners.l1.backlog_effective", effective);
    EXPECT_CITES(*overflow, "listeners.l1.accept_queue_peak", established);
    EXPECT_EQ(overflow->listener(), "l1");
    if (backlog == 100) {
      EXPECT_NE(overflow->remedy().find("Raise net.core.somaxconn on server (now 4)"),
                std::string::npos)
          << overflow->remedy();
    }
    if (backlog == 0) {
      EXPECT_NE(overflow->text().find("backlog 0 lets one wait"), std::string::npos)
          << overflow->text();
    }

    // The timeouts are the scenario's connect_timeout (500 ms, before the 1 s SYN retransmit),
    // caused by the overflow; never the kernel's tcp_syn_retries (6: about 127 s).
    const v1::Finding* timed_out = Find(d.findings, controller::verdict::kRuleTimedOut, "f1");
    ASSERT_NE(timed_out, nullptr) << d.text;
    EXPECT_CITES(*timed_out, "floods.f1.timed_out", 6 - established);
    const std::optional<double> after = Evidence(*timed_out, "floods.f1.timed_out_after_ms.median");
    ASSERT_TRUE(after.has_value()) << timed_out->text();
    EXPECT_NEAR(*after, 500.0, 50.0);
    EXPECT_EQ(timed_out->text().find("tcp_syn_retries"), std::string::npos) << timed_out->text();
    EXPECT_NE(timed_out->remedy().find("connect_timeout above 1 s"), std::string::npos);
    EXPECT_NE(timed_out->text().find("accept queue of listener l1 full"), std::string::npos)
        << timed_out->text();
    EXPECT_EQ(Find(d.findings, controller::verdict::kRuleAllEstablished), nullptr) << d.text;
  }
}

TEST_F(Diagnosis, PacedAcceptShowsTheOneSecondRetransmitBand) {
  // examples/paced-accept.yaml: 20 SYNs in one second against a queue of backlog 2 + 1 that is
  // drained 4 times a second. At most 3 + 4 connect in the first second; the other SYNs find
  // the queue full, are dropped and retransmitted after the 1 s initial RTO, so some connects
  // complete at ~1 s; the connect_timeout of 12 s lets all 20 complete in the end.
  const std::vector<DiagnosedRun> runs =
      RunAndDiagnose(Source("examples/paced-accept.yaml"), out_, 1);
  ASSERT_EQ(runs.size(), 1u);
  const DiagnosedRun& d = runs[0];
  const v1::Flood& f1 = d.run.floods().at("f1");
  ASSERT_EQ(f1.established(), 20u);

  const v1::Finding* bands = Find(d.findings, controller::verdict::kRuleSynRetransmitBands, "f1");
  ASSERT_NE(bands, nullptr) << d.text;
  const std::optional<double> first = Evidence(*bands, "floods.f1.connect_latency_band_1s");
  ASSERT_TRUE(first.has_value()) << bands->text();
  // 20 arrivals, at most 7 complete without a retransmit.
  EXPECT_GE(*first, 1);
  EXPECT_LE(*first, 20 - 3);
  EXPECT_NE(bands->text().find("at ~1.0 s"), std::string::npos) << bands->text();
  EXPECT_GT(Counter(d.run, "client", "TcpExtTCPSynRetrans"), 0);
  EXPECT_CITES(*bands, "hosts.client.counters.TcpExtTCPSynRetrans",
               Counter(d.run, "client", "TcpExtTCPSynRetrans"));
  EXPECT_NE(bands->text().find("accept queue of listener l1 full"), std::string::npos);

  const v1::Finding* all = Find(d.findings, controller::verdict::kRuleAllEstablished, "f1");
  ASSERT_NE(all, nullptr) << d.text;
  EXPECT_CITES(*all, "floods.f1.attempted", 20);
  EXPECT_CITES(*all, "floods.f1.fates.accepted", f1.fates().accepted());
  ASSERT_NE(Find(d.findings, controller::verdict::kRuleAcceptQueueOverflow), nullptr) << d.text;

  ASSERT_EQ(d.run.listeners().at("l1").accept(), v1::ACCEPT_MODE_PACED);
  const v1::Finding* paced = Find(d.findings, controller::verdict::kRulePacedAccept);
  ASSERT_NE(paced, nullptr) << d.text;
  EXPECT_CITES(*paced, "listeners.l1.accept_interval_ms", 250);
  EXPECT_CITES(*paced, "floods.f1.rate", 20);
  // backlog 2 + 1, or one more if two final ACKs raced the fullness check on two CPUs.
  const int peak = d.run.listeners().at("l1").accept_queue_peak();
  EXPECT_GE(peak, 3);
  EXPECT_LE(peak, 4);
  EXPECT_CITES(*paced, "listeners.l1.accept_queue_peak", peak);
  EXPECT_NE(paced->text().find("(4 a second)"), std::string::npos) << paced->text();
}

TEST_F(Diagnosis, FinalAckOverflowRstOrSynackRetriesAndCookiesOrSynQueueDrops) {
  // The seed overflow experiment, shortened: 200 ms delay server -> client, backlog 1, never
  // accepting, one prefill connection, then 5 at once. synack_retries 1, syn_retries 1.
  //   The first burst SYN gets a request (queue of pending requests 0 < 1); its final ACK
  //   finds the accept queue full (prefill): abort 1 -> RST one RTT after the handshake, i.e.
  //   ~2 x 200 ms from the SYN; abort 0 -> the ACK is dropped and the SYN-ACK retransmitted
  //   synack_retries (1) times.
  //   The other three SYNs find the request queue full: cookies 1 -> answered with a cookie,
  //   the client is established and unknown to the server; cookies 0 -> dropped
  //   (TCPReqQFullDrop) until syn_retries runs out: timed out at 1 + 2 s (+ the delay).
  // The burst runs on one ring (threads: 1) so its SYNs leave in order; from two rings two
  // "first" SYNs can reach the listener on two CPUs at once and both become requests.
  const std::string scenario = out_.Write("overflow.yaml", R"(name: diag-overflow
hosts: { server: {}, client: {} }
settings:
  server: { net.ipv4.tcp_synack_retries: 1, net.ipv4.tcp_abort_on_overflow: 0,
            net.ipv4.tcp_syncookies: 1 }
  client: { net.ipv4.tcp_syn_retries: 1 }
shaping:
  - { host: server, to: client, delay: 200ms, backend: auto }
capture: [server]
listeners:
  - { name: l1, host: server, backlog: 1, accept: never }
floods:
  - { name: prefill, host: client, target: l1, connections: 1, connect_timeout: 5s,
      hold: 8s, payload: "hello" }
  - { name: burst, host: client, target: l1, connections: 5, concurrency: 5, threads: 1,
      connect_timeout: 5s, start_after: 1s, hold: 6s, payload: "hello" }
sweep:
  settings.server.net.ipv4.tcp_abort_on_overflow: [1, 0]
  settings.server.net.ipv4.tcp_syncookies: [1, 0]
)");
  const std::vector<DiagnosedRun> runs = RunAndDiagnose(scenario, out_, 4);
  ASSERT_EQ(runs.size(), 4u);
  for (const DiagnosedRun& d : runs) {
    const int abort = ParamInt(d.run, "settings.server.net.ipv4.tcp_abort_on_overflow");
    const int cookies = ParamInt(d.run, "settings.server.net.ipv4.tcp_syncookies");
    SCOPED_TRACE(absl::StrCat("abort_on_overflow ", abort, " syncookies ", cookies));
    const v1::Flood& burst = d.run.floods().at("burst");
    const std::set<std::string> rules = Rules(d.findings);
    ASSERT_TRUE(rules.count(controller::verdict::kRuleAcceptQueueOverflow)) << d.text;

    if (abort == 1) {
      const v1::Finding* rst = Find(d.findings, controller::verdict::kRuleFinalAckRst);
      ASSERT_NE(rst, nullptr) << d.text;
      ASSERT_EQ(burst.reset(), 1u);
      EXPECT_CITES(*rst, "floods.burst.reset", 1);
      EXPECT_CITES(*rst, "hosts.server.settings.net.ipv4.tcp_abort_on_overflow", 1);
      const std::optional<double> at = Evidence(*rst, "floods.burst.reset_after_ms.median");
      ASSERT_TRUE(at.has_value());
      EXPECT_NEAR(*at, 400.0, 100.0) << "two delayed legs: SYN-ACK and RST";
      EXPECT_EQ(Find(d.findings, controller::verdict::kRuleFinalAckSynackRetries), nullptr);
    } else {
      const v1::Finding* retries =
          Find(d.findings, controller::verdict::kRuleFinalAckSynackRetries);
      ASSERT_NE(retries, nullptr) << d.text;
      // One SYN-ACK retransmit for the one request whose final ACK was dropped.
      EXPECT_CITES(*retries, "hosts.server.counters.TcpExtTCPSynRetrans", 1);
      EXPECT_CITES(*retries, "hosts.server.packets.from_server.synack_retransmit", 1);
      EXPECT_CITES(*retries, "hosts.server.settings.net.ipv4.tcp_synack_retries", 1);
      EXPECT_EQ(Find(d.findings, controller::verdict::kRuleFinalAckRst), nullptr);
    }

    if (cookies == 1) {
      const v1::Finding* sent = Find(d.findings, controller::verdict::kRuleSyncookiesSent);
      ASSERT_NE(sent, nullptr) << d.text;
      const double n = Counter(d.run, "server", "TcpExtSyncookiesSent");
      EXPECT_GE(n, 3);
      EXPECT_CITES(*sent, "hosts.server.counters.TcpExtSyncookiesSent", n);
      EXPECT_CITES(*sent, "hosts.server.settings.net.ipv4.tcp_syncookies", 1);
      const v1::Finding* unknown =
          Find(d.findings, controller::verdict::kRuleUnknownToServer, "burst");
      ASSERT_NE(unknown, nullptr) << d.text;
      EXPECT_CITES(*unknown, "floods.burst.fates.unknown_to_server", 3);
      EXPECT_NE(unknown->text().find("believe they are connected"), std::string::npos);
      EXPECT_EQ(Find(d.findings, controller::verdict::kRuleSynQueueFullNoCookies), nullptr);
    } else {
      const v1::Finding* dropped =
          Find(d.findings, controller::verdict::kRuleSynQueueFullNoCookies);
      ASSERT_NE(dropped, nullptr) << d.text;
      const double n = Counter(d.run, "server", "TcpExtTCPReqQFullDrop");
      EXPECT_GE(n, 3);
      EXPECT_CITES(*dropped, "hosts.server.counters.TcpExtTCPReqQFullDrop", n);
      EXPECT_CITES(*dropped, "hosts.server.settings.net.ipv4.tcp_syncookies", 0);
      EXPECT_NE(dropped->remedy().find("net.ipv4.tcp_syncookies 1"), std::string::npos);
      // The three dropped clients time out when syn_retries (1) runs out: SYN at 0, its
      // retransmit at 1 s, given up 2 s later.
      const v1::Finding* timed_out = Find(d.findings, controller::verdict::kRuleTimedOut, "burst");
      ASSERT_NE(timed_out, nullptr) << d.text;
      EXPECT_CITES(*timed_out, "floods.burst.timed_out", 3);
      EXPECT_CITES(*timed_out, "hosts.client.settings.net.ipv4.tcp_syn_retries", 1);
      const std::optional<double> at =
          Evidence(*timed_out, "floods.burst.timed_out_after_ms.median");
      ASSERT_TRUE(at.has_value());
      EXPECT_NEAR(*at, 3000.0, 400.0);
      EXPECT_NE(timed_out->text().find("SYN queue of listener l1 was full"), std::string::npos)
          << timed_out->text();
      EXPECT_EQ(Find(d.findings, controller::verdict::kRuleSyncookiesSent), nullptr);
    }
  }
}

TEST_F(Diagnosis, AbortOnOverflowPlaysNoPartWithoutDelay) {
  // No link delay: the queue is full before any SYN-ACK is out, so SYNs are dropped and there
  // is never a final ACK to answer: the same outcome for abort_on_overflow 0 and 1, no RST,
  // no SYN-ACK retransmit.
  const std::string scenario = out_.Write("nodelay.yaml", R"(name: diag-no-delay
hosts: { server: {}, client: {} }
settings:
  server: { net.core.somaxconn: 16, net.ipv4.tcp_abort_on_overflow: 1 }
listeners:
  - { name: l1, host: server, backlog: 2, accept: never }
floods:
  - { name: f1, host: client, target: l1, connections: 4, concurrency: 1,
      connect_timeout: 500ms, hold: 200ms }
)");
  const std::vector<DiagnosedRun> runs = RunAndDiagnose(scenario, out_, 1);
  ASSERT_EQ(runs.size(), 1u);
  const DiagnosedRun& d = runs[0];
  ASSERT_EQ(d.run.floods().at("f1").established(), 3u);
  const v1::Finding* idle = Find(d.findings, controller::verdict::kRuleAbortOnOverflowIdle);
  ASSERT_NE(idle, nullptr) << d.text;
  EXPECT_CITES(*idle, "hosts.server.settings.net.ipv4.tcp_abort_on_overflow", 1);
  EXPECT_CITES(*idle, "hosts.server.counters.TcpExtTCPSynRetrans", 0);
  EXPECT_EQ(Find(d.findings, controller::verdict::kRuleFinalAckRst), nullptr);
}

TEST_F(Diagnosis, RefusedWhenNothingListensAndServerSideNotObserved) {
  // The server host (198.18.0.2: the first embedded host) listens on no port 9: its kernel
  // answers every SYN with an RST, so each connect is refused. The target is an address, not a
  // listener of the run, so the server side is not observed.
  const std::string scenario = out_.Write("refused.yaml", R"(name: diag-refused
hosts: { server: {}, client: {} }
floods:
  - { name: f1, host: client, target: "198.18.0.2:9", connections: 3, concurrency: 1,
      connect_timeout: 1s }
)");
  const std::vector<DiagnosedRun> runs = RunAndDiagnose(scenario, out_, 1);
  ASSERT_EQ(runs.size(), 1u);
  const DiagnosedRun& d = runs[0];
  ASSERT_EQ(d.run.floods().at("f1").refused(), 3u) << d.text;
  const v1::Finding* refused = Find(d.findings, controller::verdict::kRuleRefused, "f1");
  ASSERT_NE(refused, nullptr) << d.text;
  EXPECT_CITES(*refused, "floods.f1.refused", 3);
  ASSERT_NE(Find(d.findings, controller::verdict::kRuleServerNotObserved, "f1"), nullptr);
  EXPECT_EQ(Find(d.findings, controller::verdict::kRuleAllEstablished), nullptr);
  ASSERT_EQ(d.run.floods().at("f1").target(), "198.18.0.2:9");
  EXPECT_NE(refused->text().find("no listener of this run is on port 9"), std::string::npos)
      << refused->text();
  EXPECT_NE(refused->remedy().find("port 9"), std::string::npos);
  // The server counted the three RSTs it sent.
  EXPECT_CITES(*refused, "hosts.server.counters.TcpOutRsts", 3);
}

// One standalone agent in a namespace the test prepares (settings synq cannot set: the local
// port range; limits: RLIMIT_NOFILE), floods its own listener on loopback.
class StandaloneAgent : public Diagnosis {
 protected:
  void Start(const std::vector<std::string>& prefix) {
    ns_ = std::make_unique<TestNetns>("diag");
    socket_ = out_.path() + "/agent.sock";
    std::vector<std::string> argv = prefix;
    for (const std::string& a :
         {Binary("agent/synq-agent"), std::string("--netns"), ns_->name(), std::string("--listen"),
          "unix:" + socket_, std::string("--state-dir"), out_.path() + "/state",
          std::string("--port-file"), out_.path() + "/addr"}) {
      argv.push_back(a);
    }
    agent_ = Spawn(argv, out_.path() + "/agent.log");
    for (int i = 0; i < 100 && !std::filesystem::exists(out_.path() + "/addr"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(std::filesystem::exists(out_.path() + "/addr")) << "agent did not start";
  }
  void TearDown() override {
    if (agent_ > 0) {
      kill(agent_, SIGTERM);
      WaitFor(agent_, std::chrono::seconds(10));
    }
    ns_.reset();
  }
  std::unique_ptr<TestNetns> ns_;
  std::string socket_;
  pid_t agent_ = -1;
};

TEST_F(StandaloneAgent, AFloodNeedingMorePortsThanTheRangeIsRefusedWithTheFigures) {
  Start({});
  // 8 local ports; 12 connections held at once to one address and port need 12 (source
  // address, port) pairs. The agent plans every flood's ports before it starts (0.4) and
  // refuses this one up front, naming both figures and what to change, instead of letting 4
  // connect() calls fail with EADDRNOTAVAIL. The listener's fixed port 7000 is outside the
  // range, so it takes none of the 8.
  ns_->Exec({"sysctl", "-w", "net.ipv4.ip_local_port_range=40000 40007"});
  const std::string scenario = out_.Write("ports.yaml", absl::StrCat(R"(name: diag-ports
hosts: { box: { agent: "unix:)",
                                                                     socket_, R"(" } }
listeners:
  - { name: l1, host: box, port: 7000, backlog: 64, accept: immediate }
floods:
  - { name: f1, host: box, target: l1, connections: 12, concurrency: 12,
      connect_timeout: 1s, hold: 1s }
)"));
  SynqRun r = RunSynq(scenario, out_.path());
  EXPECT_EQ(r.exit_code, 3) << r.output;  // the host refused the run
  EXPECT_NE(r.output.find("needs 12 source ports"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("8 usable ports"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("net.ipv4.ip_local_port_range"), std::string::npos) << r.output;
}

TEST_F(StandaloneAgent, FdLimitGivesEmfile) {
  // The agent may hold 200 descriptors. Its listener accepts at once, so each connection costs
  // two (client socket + accepted socket) and at most 100 can be open; the flood of 120 held
  // connections (within the agent's per-flood budget of 200 - open - margin) must run out of
  // descriptors: socket() fails with EMFILE.
  Start({"/usr/bin/prlimit", "--nofile=200:200"});
  const std::string scenario = out_.Write("fds.yaml", absl::StrCat(R"(name: diag-fds
hosts: { box: { agent: "unix:)",
                                                                   socket_, R"(" } }
listeners:
  - { name: l1, host: box, port: 7000, backlog: 512, accept: immediate }
floods:
  - { name: f1, host: box, target: l1, connections: 120, concurrency: 120, rate: 400,
      connect_timeout: 1s, hold: 1s }
)"));
  const std::vector<DiagnosedRun> runs = RunAndDiagnose(scenario, out_, 1);
  ASSERT_EQ(runs.size(), 1u);
  const DiagnosedRun& d = runs[0];
  const v1::Flood& f1 = d.run.floods().at("f1");
  ASSERT_TRUE(f1.errors().contains("EMFILE")) << d.text;
  const uint32_t emfile = f1.errors().at("EMFILE");
  EXPECT_GT(emfile, 0u);
  EXPECT_LE(f1.established(), 100u) << "two descriptors per connection under a limit of 200";
  const v1::Finding* fds = Find(d.findings, controller::verdict::kRuleFdLimit, "f1");
  ASSERT_NE(fds, nullptr) << d.text;
  EXPECT_CITES(*fds, "floods.f1.errors.EMFILE", emfile);
  EXPECT_NE(fds->text().find("RLIMIT_NOFILE"), std::string::npos);
  EXPECT_NE(fds->remedy().find("open-file limit"), std::string::npos);
}

// A host whose agent dies mid-run: synq exits 3, keeps what the other host returned, and the
// diagnosis says which host failed and that its figures are missing, instead of explaining a
// run it did not see.
TEST_F(Diagnosis, AHostThatDiesMidRunIsNamedAndTheOthersResultsAreKept) {
  TestNetns ns("diagdie");
  auto start_agent = [&](const std::string& name) {
    const std::string dir = out_.path() + "/" + name;
    std::filesystem::create_directories(dir);
    const pid_t pid = Spawn({Binary("agent/synq-agent"), "--netns", ns.name(), "--listen",
                             "unix:" + dir + "/agent.sock", "--state-dir", dir + "/state",
                             "--port-file", dir + "/addr"},
                            dir + "/agent.log");
    for (int i = 0; i < 100 && !std::filesystem::exists(dir + "/addr"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return pid;
  };
  const pid_t box = start_agent("box");
  const pid_t other = start_agent("other");
  ASSERT_TRUE(std::filesystem::exists(out_.path() + "/other/addr")) << "agent did not start";
  // box floods its own listener for ~3 s (hold); other only takes part in the run.
  const std::string scenario =
      out_.Write("die.yaml", absl::StrCat(R"(name: diag-die
hosts:
  box: { agent: "unix:)",
                                          out_.path(), R"(/box/agent.sock" }
  other: { agent: "unix:)",
                                          out_.path(), R"(/other/agent.sock" }
listeners:
  - { name: l1, host: box, port: 7001, backlog: 64, accept: immediate }
floods:
  - { name: f1, host: box, target: l1, connections: 10, concurrency: 10,
      connect_timeout: 1s, hold: 3s }
)"));
  const pid_t synq = Spawn({Binary("controller/synq"), "run", scenario, "--out", out_.path()},
                           out_.path() + "/synq.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(other, SIGKILL);
  WaitFor(other, std::chrono::seconds(5));
  EXPECT_EQ(WaitFor(synq, std::chrono::seconds(60)), 3) << "a failed host is exit code 3";
  kill(box, SIGTERM);
  WaitFor(box, std::chrono::seconds(10));

  auto result = controller::result::ReadResultFile(out_.path() + "/result.json");
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->runs_size(), 1);
  const v1::Run& run = result->runs(0);
  EXPECT_FALSE(run.hosts().at("other").error().empty());
  EXPECT_FALSE(run.hosts().at("other").counters_unavailable().empty());
  // box's flood arrived: 10 connections to an accepting listener with room for all.
  ASSERT_TRUE(run.floods().contains("f1"));
  EXPECT_EQ(run.floods().at("f1").established(), 10u);
  const std::vector<v1::Finding> findings(run.diagnosis().begin(), run.diagnosis().end());
  const v1::Finding* failed = Find(findings, controller::verdict::kRuleHostFailed);
  ASSERT_NE(failed, nullptr) << RenderDiagnosis(run);
  EXPECT_EQ(failed->host(), "other");
}

}  // namespace
}  // namespace synq::testing
