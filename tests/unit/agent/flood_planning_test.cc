// Proves flood planning: usable ports are ip_local_port_range minus ip_local_reserved_ports;
// splitting a flood into shares (rings x workers, and floods sharing an address) gives every
// port and every attempt to exactly one share and keeps concurrency's sum; sources default to
// the route's interface addresses and explicit ones must be local; the budget refuses floods
// that do not fit (ports, TIME_WAIT, worker processes, kernel memory) with the figures, and
// plans worker processes past the descriptor limit. Routes are the real kernel's (loopback).
#include <set>
#include <string>
#include <vector>

#include "agent/flood/flood_runner.h"
#include "agent/flood/source_ports.h"
#include "common/net_address.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace synq::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<uint16_t> Enumerate(const SourcePorts& p) {
  std::vector<uint16_t> out;
  for (const PortRange& r : p.ranges) {
    for (uint32_t port = r.first; port <= r.last; ++port) {
      if (port % p.stride == p.offset) out.push_back(static_cast<uint16_t>(port));
    }
  }
  return out;
}

FloodSpec Spec(const std::string& target, uint64_t connections) {
  FloodSpec s;
  s.name = "f1";
  s.target = *common::ParseSocketAddress(target);
  s.connections = connections;
  s.concurrency = 1000;
  return s;
}

// The defaults of a stock kernel: 32768-60999, nothing reserved, tw_reuse 2; a 20,000 fd limit.
HostBudget StockBudget() {
  HostBudget b;
  b.ports.local_range = {32768, 60999};
  b.ports.tw_reuse = 2;
  b.fd_hard_limit = 20000;
  b.fds_open = 36;
  b.mem_available = uint64_t{16} << 30;
  b.socket_bytes_v4 = b.socket_bytes_v6 = 3600;
  b.socket_bytes_source = "test";
  b.cores = 2;
  return b;
}

TEST(PortList, ParsesTheKernelsFormat) {
  auto list = ParsePortList("1000-1010,2000\n", "reserved");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].first, 1000);
  EXPECT_EQ((*list)[0].last, 1010);
  EXPECT_EQ((*list)[1].first, 2000);
  EXPECT_EQ((*list)[1].last, 2000);
  EXPECT_TRUE(ParsePortList("", "reserved")->empty());
  EXPECT_THAT(ParsePortList("70000", "reserved").status().message(), HasSubstr("'70000'"));
  EXPECT_THAT(ParsePortList("9-3", "reserved").status().message(), HasSubstr("ends before"));
}

TEST(UsablePorts, RangeLessReservedPorts) {
  // 28232 ports in 32768-60999; reserved: 11 in 40000-40010, 1 at 50000, 5 overlapping the
  // start (32768-32772 of 32760-32772), none from 61000-61010 (outside the range).
  std::vector<PortRange> reserved = {
      {50000, 50000}, {40000, 40010}, {32760, 32772}, {61000, 61010}};
  std::vector<PortRange> usable = UsablePorts({32768, 60999}, reserved);
  EXPECT_EQ(CountPorts(usable), 28232u - 11 - 1 - 5);
  for (const PortRange& r : usable) {
    for (const PortRange& x : reserved) EXPECT_TRUE(r.last < x.first || r.first > x.last);
  }
  EXPECT_EQ(usable.front().first, 32773);
  EXPECT_EQ(usable.back().last, 60999);
  EXPECT_EQ(CountPorts(UsablePorts({1024, 65535}, {})), 64512u);
}

TEST(ShareOf, EveryPortAndAttemptGoesToExactlyOneShare) {
  FloodSpec spec = Spec("127.0.0.1:8080", 100001);
  spec.concurrency = 1003;
  spec.source_ports = {SourcePorts{*common::ParseHostAddress("127.0.0.1", 0),
                                   UsablePorts({32768, 60999}, {{40000, 40010}}), 1, 0}};
  const uint64_t all = CountPorts(spec.source_ports[0]);
  // 3 workers of 2 rings: shares of shares, as the runner makes them.
  std::multiset<uint16_t> seen;
  uint64_t concurrency = 0, attempts = 0, counted = 0;
  std::set<uint32_t> offsets;
  for (uint32_t w = 0; w < 3; ++w) {
    FloodSpec worker = ShareOf(spec, 3, w);
    for (uint32_t t = 0; t < 2; ++t) {
      FloodSpec ring = ShareOf(worker, 2, t);
      EXPECT_EQ(ring.schedule_stride, 6u);
      offsets.insert(ring.schedule_offset);
      concurrency += ring.concurrency;
      attempts += AttemptsOfShare(spec.connections, ring.schedule_stride, ring.schedule_offset);
      for (uint16_t p : Enumerate(ring.source_ports[0])) seen.insert(p);
      counted += CountPorts(ring.source_ports[0]);
    }
  }
  EXPECT_EQ(offsets, (std::set<uint32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(concurrency, 1003u);
  EXPECT_EQ(attempts, 100001u);
  EXPECT_EQ(seen.size(), all);
  EXPECT_EQ(std::set<uint16_t>(seen.begin(), seen.end()).size(), all);  // no port twice
  EXPECT_EQ(counted, all);
}

TEST(ResolveSources, LoopbackTargetDefaultsToLoAddressesOfItsFamily) {
  // lo carries 127.0.0.1/8 and ::1/128: the route to 127.0.0.1 leaves by lo.
  auto v4 = ResolveSources(Spec("127.0.0.1:8080", 1));
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_THAT(*v4, ElementsAre("127.0.0.1"));
  auto v6 = ResolveSources(Spec("[::1]:8080", 1));
  if (!v6.ok()) GTEST_SKIP() << "no IPv6 loopback: " << v6.status();
  EXPECT_THAT(*v6, ElementsAre("::1"));
}

TEST(ResolveSources, ExplicitSourcesMustBeLocalAndOfTheTargetsFamily) {
  FloodSpec spec = Spec("127.0.0.1:8080", 1);
  spec.sources = {"127.0.0.1", "127.0.0.2"};  // all of 127/8 is a local route
  auto ok = ResolveSources(spec);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(*ok, ElementsAre("127.0.0.1", "127.0.0.2"));
  spec.sources = {"127.0.0.1", "192.0.2.7"};  // TEST-NET-1: never a local address here
  auto foreign = ResolveSources(spec);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(foreign.status().message(), HasSubstr("floods.f1.sources: 192.0.2.7 is not a local"));
  spec.sources = {"::1"};
  EXPECT_THAT(ResolveSources(spec).status().message(),
              HasSubstr("::1 is not of the target's address family"));
}

TEST(PlanFloods, RefusesKeepFloodThatNeedsMorePortsThanOneAddressHas) {
  auto plans = PlanFloods({Spec("127.0.0.1:8080", 100000)}, StockBudget());
  ASSERT_EQ(plans.status().code(), absl::StatusCode::kFailedPrecondition);
  // 60999 - 32768 + 1 = 28232 ports on the one address of lo.
  EXPECT_THAT(plans.status().message(),
              HasSubstr("flood 'f1' needs 100000 source ports towards 127.0.0.1:8080 but 1 source "
                        "address (127.0.0.1) x 28232 usable ports = 28232; add sources"));
  EXPECT_THAT(plans.status().message(),
              HasSubstr("net.ipv4.ip_local_port_range (now 32768-60999)"));
}

TEST(PlanFloods, FinFloodCountsTimeWaitUnlessReuseApplies) {
  FloodSpec spec = Spec("127.0.0.1:8080", 1000000);
  spec.close = CloseMode::kFin;
  spec.concurrency = 100;
  spec.rate = 1000;
  spec.profile.rate = 1000;
  spec.duration = std::chrono::seconds(120);
  HostBudget b = StockBudget();
  b.ports.tw_reuse = 0;
  auto refused = PlanFloods({spec}, b);
  // 100 open + 1000/s x 60 s in TIME_WAIT = 60100 > 28232.
  EXPECT_THAT(refused.status().message(), HasSubstr("needs 60100 source ports"));
  EXPECT_THAT(refused.status().message(), HasSubstr("60000 in TIME_WAIT for 60 s"));
  b.ports.tw_reuse = 2;  // loopback target: TIME_WAIT 4-tuples are reused
  auto fits = PlanFloods({spec}, b);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(fits->front().ports_needed, 100u);
  EXPECT_EQ(fits->front().attempts, 120000u);  // duration x rate caps connections
}

TEST(PlanFloods, FloodsTowardsOneTargetSplitAnAddresssPorts) {
  FloodSpec a = Spec("127.0.0.1:8080", 10000), b = Spec("127.0.0.1:8080", 20000);
  b.name = "f2";
  auto refused = PlanFloods({a, b}, StockBudget());
  // Two floods share 127.0.0.1's 28232 ports: 14116 each, and f2 needs 20000.
  EXPECT_THAT(refused.status().message(), HasSubstr("flood 'f2' needs 20000"));
  EXPECT_THAT(refused.status().message(), HasSubstr("shared with flood(s) f1"));
  EXPECT_THAT(refused.status().message(), HasSubstr("= 14116"));
  b.sources = {"127.0.0.2"};
  auto fits = PlanFloods({a, b}, StockBudget());
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ((*fits)[0].ports_available, 28232u);
}

TEST(PlanFloods, PlansWorkerProcessesPastTheDescriptorLimit) {
  FloodSpec spec = Spec("127.0.0.1:8080", 30000);
  spec.sources = {"127.0.0.1", "127.0.0.2"};
  HostBudget b = StockBudget();
  auto plans = PlanFloods({spec}, b);
  ASSERT_TRUE(plans.ok()) << plans.status();
  // 30000 sockets; a worker may hold 20000 - 64 = 19936: 2 workers.
  EXPECT_EQ(plans->front().workers, 2u);
  EXPECT_EQ(plans->front().sockets, 30000u);
  EXPECT_EQ(plans->front().threads, 2u);  // cores
  spec.connections = 15000;  // fits in this process: 20000 - 36 open - 64 margin = 19900
  EXPECT_EQ(PlanFloods({spec}, b)->front().workers, 0u);
  spec.connections = 30000;
  b.max_workers = 1;
  auto refused = PlanFloods({spec}, b);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("need 30000 sockets open at once: 2 worker processes of at most 19936"));
  EXPECT_THAT(refused.status().message(), HasSubstr("at most 1 workers are allowed"));
}

TEST(PlanFloods, RingsFollowTheAttemptsUpToTheCores) {
  // One ring per kAttemptsPerRing (1024) attempts, at most the 2 cores: a small flood wakes one
  // thread at the instant; `threads` overrides.
  auto threads = [](FloodSpec spec) {
    auto plans = PlanFloods({spec}, StockBudget());
    EXPECT_TRUE(plans.ok()) << plans.status();
    return plans.ok() ? plans->front().threads : 0u;
  };
  EXPECT_EQ(threads(Spec("127.0.0.1:8080", 2)), 1u);
  EXPECT_EQ(threads(Spec("127.0.0.1:8080", 1024)), 1u);
  EXPECT_EQ(threads(Spec("127.0.0.1:8080", 1025)), 2u);
  EXPECT_EQ(threads(Spec("127.0.0.1:8080", 10000)), 2u);
  FloodSpec pinned = Spec("127.0.0.1:8080", 2);
  pinned.threads = 2;
  EXPECT_EQ(threads(pinned), 2u);
}

TEST(PlanFloods, RefusesWhatDoesNotFitInKernelMemory) {
  FloodSpec spec = Spec("127.0.0.1:8080", 10000);
  HostBudget b = StockBudget();
  b.mem_available = 50 << 20;
  b.socket_bytes_v4 = 4000;
  auto refused = PlanFloods({spec}, b);
  // Both ends are on this host: 10000 x 4000 x 2 = 80,000,000 bytes = 76 MiB > 90% of 50 MiB.
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("need 76 MiB of kernel memory"));
  EXPECT_THAT(refused.status().message(), HasSubstr("10000 sockets x 4000 bytes x 2"));
  EXPECT_THAT(refused.status().message(), HasSubstr("MemAvailable is 50 MiB"));
}

TEST(HostBudget, ReadsThisHostsFacts) {
  auto b = ReadHostBudget("/proc/sys");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_LE(b->ports.local_range.first, b->ports.local_range.last);
  EXPECT_GT(b->fd_hard_limit, b->fds_open);
  EXPECT_GT(b->socket_bytes_v4, 1000u) << b->socket_bytes_source;  // a tcp_sock alone is ~2 KiB
}

}  // namespace
}  // namespace synq::agent
