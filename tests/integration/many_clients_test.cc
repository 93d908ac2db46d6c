// Proves several client hosts can flood one server host at one instant: every flood is counted
// on its own host, the server's listener and counters see them all, and the start skew between
// the clients is small.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

TEST(ManyClients, ThreeClientHostsFloodOneServerAtOneInstant) {
  if (!IsRoot()) GTEST_SKIP() << "needs root: hosts are network namespaces";
  TempDir out;
  SynqRun r = RunSynq(Source("examples/many-clients.yaml"), out.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto& run = r.result["runs"][0];
  int64_t total = 0;
  for (const char* flood : {"f1", "f2", "f3"}) {
    const auto& f = run["floods"][flood];
    EXPECT_EQ(f["established"].get<int64_t>(), 300) << flood;
    EXPECT_EQ(f["fates"].value("accepted", 0), 300) << flood;
    total += f["established"].get<int64_t>();
  }
  EXPECT_EQ(run["floods"]["f1"]["host"], "c1");
  EXPECT_EQ(run["floods"]["f3"]["host"], "c3");
  EXPECT_EQ(run["listeners"]["l1"]["accepted"].get<int64_t>(), total);
  EXPECT_EQ(run["hosts"]["server"]["counters"]["TcpPassiveOpens"].get<int64_t>(), total);
  EXPECT_EQ(run["hosts"]["c2"]["counters"]["TcpActiveOpens"].get<int64_t>(), 300);
  // One start instant: the clients' floods began within a few milliseconds of each other.
  EXPECT_LT(run["start_skew_ms"].get<double>(), 20.0);
}

}  // namespace
}  // namespace synq::testing
