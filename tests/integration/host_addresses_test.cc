// Proves `hosts: {client: {addresses: N}}`: an embedded host gets N addresses from
// 198.18.0.0/15 on its eth0, its agent lists them (HostInfo.addresses), and a flood bound to an
// extra address gets its replies routed back: every connection is established and the server's
// sockets show that source, so the fate join finds each one (accepted by an immediate
// listener). `sources: N` picks the first N addresses of the host.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

TEST(HostAddresses, ExtraAddressesAreUsableSourcesWithRoutedReplies) {
  if (!IsRoot()) GTEST_SKIP() << "needs root: embedded hosts are network namespaces";
  TempDir dir;
  // Host index 2 (client) gets 198.18.0.3 and the extras 198.18.2.2, 198.18.2.3.
  const std::string scenario = dir.Write("s.yaml", R"(name: addresses
hosts: { server: {}, client: { addresses: 3 } }
listeners: [ { name: l1, host: server, backlog: 64, accept: immediate } ]
floods:
  - { name: f1, host: client, target: l1, connections: 20, concurrency: 20,
      sources: [198.18.2.3], connect_timeout: 1s, hold: 200ms }
  - { name: f2, host: client, target: l1, connections: 30, concurrency: 30, sources: 3,
      connect_timeout: 1s, hold: 200ms }
)");
  SynqRun r = RunSynq(scenario, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto& run = r.result["runs"][0];
  const auto& f1 = run["floods"]["f1"];
  EXPECT_EQ(f1["established"].get<int>(), 20) << r.output;
  // The server saw each connection from the extra address and accepted it.
  EXPECT_EQ(f1["fates"]["accepted"].get<int>(), 20) << f1.dump();
  EXPECT_EQ(f1["sources"][0].get<std::string>(), "198.18.2.3");
  const auto& f2 = run["floods"]["f2"];
  EXPECT_EQ(f2["established"].get<int>(), 30) << r.output;
  EXPECT_EQ(f2["fates"]["accepted"].get<int>(), 30) << f2.dump();
  EXPECT_EQ(f2["sources"].size(), 3u) << f2.dump();
}

}  // namespace
}  // namespace synq::testing
