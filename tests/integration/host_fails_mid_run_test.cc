// Proves that when one host fails mid-run (its agent SIGKILLed while its flood holds its
// connections), synq keeps every result that did arrive and marks the host that failed:
// - synq exits 3, naming the failed host and the phase;
// - result.json still holds the surviving client's flood with its kernel-derived figures, the
//   server's listener row and the server's counters;
// - hosts.<dead>.error is set, and the dead host's flood is absent and named in not_observed
//   (never zeros presented as measured);
// - the start skew is not reported (absent and named in not_observed, since one flood's start
//   is missing), in result.json and in the printed table: never "0.00 ms".
// Three real agents on unix sockets, each in a network namespace of its own; the clients reach
// the server over veths on a bridge inside the server's namespace (198.18.72.0/24).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr int kPerClient = 4;  // connections (and concurrency: one wave) of each client's flood
// Room in the accept queue (backlog + 1) for both clients' connections: with less, whichever
// client's handshakes land first takes every slot and the other may hold nothing to be killed
// with (one io_uring batch of 4 connects beats the other namespace's often enough).
constexpr int kBacklog = 2 * kPerClient - 1;
const std::string kServerIp = "198.18.72.100";

// Established TCP sockets in a namespace.
int Established(const TestNetns& ns) {
  int n = 0;
  for (absl::string_view line :
       absl::StrSplit(ns.Exec({"ss", "-Htn", "state", "established"}), '\n', absl::SkipEmpty())) {
    (void)line;
    ++n;
  }
  return n;
}

uint64_t Get(const nlohmann::json& row, const char* field) {
  return row.contains(field) ? row[field].get<uint64_t>() : 0;
}

// A spawned `synq run`, SIGKILLed and reaped by the destructor if still running.
struct SynqProcess {
  pid_t pid = -1;
  ~SynqProcess() {
    if (pid > 0 && WaitFor(pid, milliseconds(0)) == -1) {
      kill(pid, SIGKILL);
      WaitFor(pid, seconds(10));
    }
  }
};

TEST(HostFailsMidRun, SurvivorsResultsAreKeptAndTheFailedHostIsMarked) {
  if (!IsRoot()) GTEST_SKIP() << "needs root: hosts are network namespaces joined by veths";
  TempDir dir;
  // Declared before the agents: destroyed after them (agents are killed first).
  TestNetns server_ns("mrsrv"), c1_ns("mrc1"), c2_ns("mrc2");
  std::vector<std::string> errors;
  auto must = [&errors](const ProcessResult& p, const std::string& what) {
    if (p.exit_code != 0) errors.push_back(absl::StrCat(what, ": ", p.output));
  };
  must(server_ns.Run({"ip", "link", "set", "lo", "up"}), "server lo");
  must(server_ns.Run({"ip", "link", "add", "br0", "type", "bridge"}), "bridge");
  must(server_ns.Run({"ip", "addr", "add", kServerIp + "/24", "dev", "br0"}), "bridge address");
  must(server_ns.Run({"ip", "link", "set", "br0", "up"}), "bridge up");
  int k = 1;
  for (const TestNetns* ns : {&c1_ns, &c2_ns}) {
    const std::string port = absl::StrCat("p", k);
    must(ns->Run({"ip", "link", "set", "lo", "up"}), "client lo");
    must(ns->Run({"ip", "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns",
                  server_ns.name()}),
         "veth");
    must(server_ns.Run({"ip", "link", "set", port, "master", "br0"}), "bridge port");
    must(server_ns.Run({"ip", "link", "set", port, "up"}), "port up");
    must(ns->Run({"ip", "addr", "add", absl::StrCat("198.18.72.", k, "/24"), "dev", "eth0"}),
         "client address");
    must(ns->Run({"ip", "link", "set", "eth0", "up"}), "eth0 up");
    ++k;
  }
  ASSERT_TRUE(errors.empty()) << errors.front();

  AgentProcess server, c1, c2;
  const std::string server_agent = server.Start(server_ns.name(), "unix:" + dir.path() + "/s.sock",
                                                dir.path() + "/s-state", dir.path() + "/s.log");
  const std::string c1_agent = c1.Start(c1_ns.name(), "unix:" + dir.path() + "/c1.sock",
                                        dir.path() + "/c1-state", dir.path() + "/c1.log");
  const std::string c2_agent = c2.Start(c2_ns.name(), "unix:" + dir.path() + "/c2.sock",
                                        dir.path() + "/c2-state", dir.path() + "/c2.log");
  ASSERT_FALSE(server_agent.empty() || c1_agent.empty() || c2_agent.empty())
      << "an agent did not start (logs in " << dir.path() << ")";

  // Each client connects kPerClient times at once (one wave: budget connect_timeout 1 s + hold
  // 4 s = 5 s), into a listener that never accepts but has room for all: the hold leaves
  // seconds to kill c2's agent.
  const std::string scenario = dir.Write(
      "midrun.yaml",
      absl::StrCat("name: midrun\nhosts:\n  server: {agent: \"", server_agent,
                   "\"}\n  c1: {agent: \"", c1_agent, "\"}\n  c2: {agent: \"", c2_agent, "\"}\n",
                   "listeners:\n  - {name: l1, host: server, backlog: ", kBacklog,
                   ", accept: never}\nfloods:\n",
                   "  - {name: f1, host: c1, target: l1, connections: ", kPerClient,
                   ", concurrency: ", kPerClient, ", connect_timeout: 1s, hold: 4s}\n",
                   "  - {name: f2, host: c2, target: l1, connections: ", kPerClient,
                   ", concurrency: ", kPerClient, ", connect_timeout: 1s, hold: 4s}\n"));
  const std::string out = dir.path() + "/out";
  const std::string log_file = dir.path() + "/synq.log";
  SynqProcess synq;
  const auto spawned = std::chrono::steady_clock::now();
  synq.pid = Spawn({Binary("controller/synq"), "run", scenario, "--out", out}, log_file);
  ASSERT_GT(synq.pid, 0);
  auto synq_log = [&] {
    std::ifstream in(log_file);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  // Mid-run: c2's flood holds a connection (the client end is established in its namespace).
  ASSERT_TRUE(PollUntil([&] { return Established(c2_ns) >= 1; }, seconds(15)))
      << "c2's flood never established a connection\n"
      << synq_log();
  const int killed = c2.Signal(SIGKILL, seconds(5));
  ASSERT_EQ(killed, 128 + SIGKILL);
  const auto kill_at = std::chrono::steady_clock::now();

  // Collect's wait on c1 lasts until its flood ends (5 s budget from the start); c2's wait
  // fails at once (its socket is gone). 25 s would mean synq waited on the dead host.
  const int code = WaitFor(synq.pid, seconds(25));
  const auto exited = std::chrono::steady_clock::now();
  const std::string log = synq_log();
  ASSERT_EQ(code, 3) << log;
  EXPECT_TRUE(absl::StrContains(log, "hosts.c2: agent " + c2_agent)) << log;
  EXPECT_TRUE(absl::StrContains(log, "(phase: collect)")) << log;

  // The printed table: the skew is not observed, never 0.00.
  EXPECT_TRUE(absl::StrContains(log, "start skew not_observed")) << log;
  EXPECT_FALSE(absl::StrContains(log, "start skew 0.00")) << log;

  std::ifstream in(out + "/result.json");
  ASSERT_TRUE(in) << "no result.json after a host failed\n" << log;
  const nlohmann::json result = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(result.is_discarded());
  const nlohmann::json& run = result["runs"][0];
  const std::string not_observed = run.value("not_observed", nlohmann::json::array()).dump();

  // The failed host is marked; its counters were not collected: none are listed (protobuf's
  // printer writes the empty map), and why is said.
  const nlohmann::json& dead = run["hosts"]["c2"];
  EXPECT_THAT(dead.value("error", ""), HasSubstr("(phase: collect)")) << dead.dump();
  EXPECT_TRUE(dead.value("counters", nlohmann::json::object()).empty()) << dead.dump();
  EXPECT_THAT(dead.value("counters_unavailable", ""), HasSubstr("the host failed")) << dead.dump();
  EXPECT_EQ(run["hosts"]["c1"].value("error", ""), "");
  EXPECT_EQ(run["hosts"]["server"].value("error", ""), "");

  // The dead host's flood: absent and named, never zeros presented as measured.
  ASSERT_TRUE(run.contains("floods")) << "every flood was dropped\n" << run.dump();
  EXPECT_FALSE(run["floods"].contains("f2")) << run["floods"]["f2"].dump();
  EXPECT_TRUE(absl::StrContains(not_observed, "floods.f2: host 'c2' returned no result"))
      << not_observed;

  // The survivor's flood, with figures the kernel decides.
  ASSERT_TRUE(run["floods"].contains("f1")) << run["floods"].dump();
  const nlohmann::json& f1 = run["floods"]["f1"];
  EXPECT_EQ(f1["host"], "c1");
  EXPECT_EQ(f1["target_ip"], kServerIp);
  // Every connection it was asked for was attempted, and each ended in exactly one outcome.
  EXPECT_EQ(Get(f1, "attempted"), static_cast<uint64_t>(kPerClient));
  const uint64_t established = Get(f1, "established");
  EXPECT_EQ(established + Get(f1, "timed_out") + Get(f1, "reset") + Get(f1, "refused"),
            static_cast<uint64_t>(kPerClient))
      << f1.dump();
  // The server was observed, so each established connection is joined with its socket there.
  // The never-accepting listener's queue holds backlog + 1 = 2 x kPerClient (sk_acceptq_is_full
  // is `>`): room for every connection of both clients, so all of c1's are established and
  // queued, none accepted.
  ASSERT_TRUE(f1.value("server_observed", false)) << f1.dump();
  EXPECT_EQ(established, static_cast<uint64_t>(kPerClient)) << f1.dump();
  const nlohmann::json& fates = f1["fates"];
  EXPECT_EQ(Get(fates, "accepted"), 0u) << fates.dump();
  EXPECT_EQ(Get(fates, "queued"), established) << fates.dump();
  uint64_t histogram = 0;
  for (const auto& [bucket, n] : f1["connect_latency_histogram"]["buckets"].items()) {
    histogram += n.get<uint64_t>();
  }
  EXPECT_EQ(histogram, established);

  // The server's listener row: nothing accepted; its queue filled to backlog + 1 with both
  // clients' connections (a killed client's sockets stay counted there until accepted).
  ASSERT_TRUE(run["listeners"].contains("l1")) << run.dump();
  const nlohmann::json& l1 = run["listeners"]["l1"];
  EXPECT_EQ(l1["host"], "server");
  EXPECT_EQ(Get(l1, "backlog"), static_cast<uint64_t>(kBacklog));
  EXPECT_EQ(Get(l1, "accepted"), 0u);
  EXPECT_EQ(Get(l1, "accept_queue_peak"), static_cast<uint64_t>(kBacklog + 1)) << l1.dump();

  // The server's counters (deltas over the run): one child socket (TcpPassiveOpens) per
  // handshake of both clients, 2 x kPerClient = backlog + 1, and the queue never overflowed.
  const nlohmann::json& counters = run["hosts"]["server"]["counters"];
  ASSERT_FALSE(counters.is_null()) << run["hosts"]["server"].dump();
  EXPECT_EQ(Get(counters, "TcpPassiveOpens"), static_cast<uint64_t>(kBacklog + 1))
      << counters.dump();
  EXPECT_EQ(Get(counters, "TcpExtListenOverflows"), 0u) << counters.dump();
  EXPECT_EQ(Get(run["hosts"]["c1"]["counters"], "TcpActiveOpens"),
            static_cast<uint64_t>(kPerClient));

  // One flood's start is missing: no skew, no latest start, and why.
  EXPECT_FALSE(run.contains("start_skew_ms")) << run["start_skew_ms"].dump();
  EXPECT_FALSE(run.contains("start_lateness_ms"));
  EXPECT_TRUE(absl::StrContains(not_observed, "start_skew_ms: the start of 1 of 2 floods"))
      << not_observed;

  std::printf(
      "f1 (survivor): attempted %lu established %lu timed_out %lu queued %lu syn_recv %lu; "
      "l1 peak %lu; server PassiveOpens %lu ListenOverflows %lu\nc2 error: %s\n"
      "c2 killed %.1f s after synq started; synq exited %.1f s after the kill\n",
      static_cast<unsigned long>(Get(f1, "attempted")), static_cast<unsigned long>(established),
      static_cast<unsigned long>(Get(f1, "timed_out")),
      static_cast<unsigned long>(Get(fates, "queued")),
      static_cast<unsigned long>(Get(fates, "syn_recv")),
      static_cast<unsigned long>(Get(l1, "accept_queue_peak")),
      static_cast<unsigned long>(Get(counters, "TcpPassiveOpens")),
      static_cast<unsigned long>(Get(counters, "TcpExtListenOverflows")),
      dead.value("error", "").c_str(), std::chrono::duration<double>(kill_at - spawned).count(),
      std::chrono::duration<double>(exited - kill_at).count());
}

}  // namespace
}  // namespace synq::testing
