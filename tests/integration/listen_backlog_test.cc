// Proves the listen-backlog ground truth through the real synq and real agents in namespaces:
// a never-accepting listener holds min(backlog, somaxconn) + 1 connections (-1 = somaxconn),
// the next SYN is dropped and its connect times out; abort_on_overflow does not matter without
// link delay; paced accept below the arrival rate shows SYN-retransmit latency bands.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using json = nlohmann::json;

int64_t Counter(const json& run, const std::string& host, const std::string& name) {
  return run["hosts"][host]["counters"].value(name, int64_t{0});
}

class ListenBacklog : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: embedded hosts are network namespaces";
  }
  void TearDown() override {
    for (const auto& ns : SynqNamespaces()) {
      EXPECT_EQ(ns.rfind("synq-lab", 0), std::string::npos) << "left behind: " << ns;
    }
  }
  TempDir out_;
};

TEST_F(ListenBacklog, NonAcceptingListenerHoldsBacklogPlusOneCappedBySomaxconn) {
  SynqRun r = RunSynq(Source("examples/backlog-sweep.yaml"), out_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(r.result.is_object()) << r.output;
  const int64_t somaxconn = 16;
  ASSERT_EQ(r.result["runs"].size(), 10u);
  for (const json& run : r.result["runs"]) {
    const int64_t backlog = run["params"]["listeners.l1.backlog"].get<int64_t>();
    const int64_t effective = backlog < 0 ? somaxconn : std::min(backlog, somaxconn);
    SCOPED_TRACE("backlog " + std::to_string(backlog));
    const json& l1 = run["listeners"]["l1"];
    const json& f1 = run["floods"]["f1"];
    EXPECT_EQ(l1["backlog"].get<int64_t>(), backlog);
    EXPECT_EQ(l1["backlog_effective"].get<int64_t>(), effective);
    EXPECT_EQ(l1["accepted"].get<int64_t>(), 0);
    EXPECT_EQ(l1["accept_queue_peak"].get<int64_t>(), effective + 1);
    EXPECT_EQ(f1["attempted"].get<int64_t>(), 20);
    EXPECT_EQ(f1["established"].get<int64_t>(), effective + 1);
    EXPECT_EQ(f1["timed_out"].get<int64_t>(), 20 - (effective + 1));
    EXPECT_EQ(f1["reset"].get<int64_t>(), 0);
    EXPECT_EQ(f1["refused"].get<int64_t>(), 0);
    EXPECT_EQ(run["hosts"]["server"]["settings"]["net.core.somaxconn"].get<int64_t>(), somaxconn);
    // The dropped SYNs: counted as overflows and drops, and no RST answers them.
    EXPECT_GE(Counter(run, "server", "TcpExtListenOverflows"), 20 - (effective + 1));
    EXPECT_GE(Counter(run, "server", "TcpExtListenDrops"), 20 - (effective + 1));
    EXPECT_EQ(Counter(run, "server", "TcpOutRsts"), 0);
    EXPECT_EQ(Counter(run, "server", "TcpPassiveOpens"), effective + 1);
    EXPECT_FALSE(run["samples"].empty());
  }
}

TEST_F(ListenBacklog, SomaxconnCapsTheBacklogAtListenTime) {
  SynqRun r = RunSynq(Source("examples/somaxconn-cap.yaml"), out_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(r.result["runs"].size(), 3u);
  for (const json& run : r.result["runs"]) {
    const int64_t somaxconn = run["params"]["settings.server.net.core.somaxconn"].get<int64_t>();
    SCOPED_TRACE("somaxconn " + std::to_string(somaxconn));
    EXPECT_EQ(run["listeners"]["l1"]["backlog"].get<int64_t>(), 100);
    EXPECT_EQ(run["listeners"]["l1"]["backlog_effective"].get<int64_t>(), somaxconn);
    EXPECT_EQ(run["floods"]["f1"]["established"].get<int64_t>(), somaxconn + 1);
    EXPECT_EQ(run["floods"]["f1"]["timed_out"].get<int64_t>(), 12 - (somaxconn + 1));
    EXPECT_EQ(run["hosts"]["server"]["settings"]["net.core.somaxconn"].get<int64_t>(), somaxconn);
  }
}

TEST_F(ListenBacklog, AbortOnOverflowMakesNoDifferenceWithoutLinkDelay) {
  SynqRun r = RunSynq(Source("examples/abort-on-overflow-no-delay.yaml"), out_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(r.result["runs"].size(), 2u);
  std::vector<json> outcomes;
  for (const json& run : r.result["runs"]) {
    const json& f1 = run["floods"]["f1"];
    EXPECT_EQ(f1["established"].get<int64_t>(), 5);
    EXPECT_EQ(f1["timed_out"].get<int64_t>(), 5);
    EXPECT_EQ(f1["reset"].get<int64_t>(), 0);
    EXPECT_EQ(Counter(run, "server", "TcpOutRsts"), 0);
    EXPECT_GE(Counter(run, "server", "TcpExtListenOverflows"), 5);
    EXPECT_EQ(run["hosts"]["server"]["settings"]["net.ipv4.tcp_abort_on_overflow"].get<int64_t>(),
              run["params"]["settings.server.net.ipv4.tcp_abort_on_overflow"].get<int64_t>());
    outcomes.push_back({f1["established"], f1["reset"], f1["refused"], f1["timed_out"]});
  }
  EXPECT_EQ(outcomes[0], outcomes[1]);
}

TEST_F(ListenBacklog, PacedAcceptBelowArrivalRateShowsSynRetransmitBands) {
  SynqRun r = RunSynq(Source("examples/paced-accept.yaml"), out_.path(), {"--connections"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json& run = r.result["runs"][0];
  EXPECT_GT(Counter(run, "server", "TcpExtListenOverflows"), 0);
  EXPECT_GT(Counter(run, "client", "TcpExtTCPSynRetrans"), 0);
  int fast = 0;
  int in_bands = 0;
  int first_band = 0;
  for (const json& c : run["floods"]["f1"]["connections"]) {
    ASSERT_TRUE(c.contains("connect_ms")) << c.dump();
    const double ms = c["connect_ms"].get<double>();
    const double seconds = std::round(ms / 1000.0);
    if (ms < 200) {
      ++fast;
    } else {
      // Each later connect waited for one or more SYN retransmits: near a whole second.
      EXPECT_NEAR(ms, seconds * 1000.0, 200.0) << c.dump();
      ++in_bands;
      if (seconds == 1) ++first_band;
    }
  }
  EXPECT_GT(fast, 0);
  EXPECT_GT(in_bands, 0);
  EXPECT_GT(first_band, 0);
  // The histogram resolves the bands too: p90 is seconds, p50 of the fast ones would not be.
  EXPECT_GT(run["floods"]["f1"]["connect_latency_ms"]["max"].get<double>(), 900.0);
}

}  // namespace
}  // namespace synq::testing
