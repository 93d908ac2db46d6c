// Proves ParseProcNetCounters names counters as nstat does, rejects malformed /proc/net text with
// the prefix named, and that deltas, NonZero and ReadKernelCounters (fixture and live) work.
#include "common/proc_counters.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace synq::common {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

const std::string kFixtureProc = std::string(SYNQ_SOURCE_DIR) + "/tests/unit/common/testdata/proc";

std::string ReadFixture(const std::string& name) {
  std::ifstream in(kFixtureProc + "/net/" + name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ParseProcNetCounters, NetstatFixtureNamesCountersLikeNstat) {
  const std::string text = ReadFixture("netstat");
  ASSERT_FALSE(text.empty());
  absl::StatusOr<Counters> counters = ParseProcNetCounters(text);
  ASSERT_TRUE(counters.ok()) << counters.status();
  for (const char* name : {"TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop",
                           "TcpExtTCPSynRetrans", "TcpExtSyncookiesSent", "IpExtInOctets"}) {
    EXPECT_TRUE(counters->contains(name)) << name;
  }
  EXPECT_FALSE(counters->contains("ListenOverflows"));
}

TEST(ParseProcNetCounters, SnmpFixtureHasTcpCountersAndNegativeMaxConn) {
  absl::StatusOr<Counters> counters = ParseProcNetCounters(ReadFixture("snmp"));
  ASSERT_TRUE(counters.ok()) << counters.status();
  for (const char* name : {"TcpPassiveOpens", "TcpOutRsts", "TcpRetransSegs", "TcpActiveOpens",
                           "IpInReceives", "IcmpInMsgs", "UdpInDatagrams", "UdpLiteInDatagrams"}) {
    EXPECT_TRUE(counters->contains(name)) << name;
  }
  EXPECT_EQ(counters->at("TcpMaxConn"), -1);
}

TEST(ParseProcNetCounters, ParsesValuesInOrder) {
  absl::StatusOr<Counters> counters = ParseProcNetCounters(
      "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 3 17\nTcp: MaxConn PassiveOpens\n"
      "Tcp: -1 42\n");
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_THAT(*counters, UnorderedElementsAre(Pair("TcpExtSyncookiesSent", 3),
                                              Pair("TcpExtListenOverflows", 17),
                                              Pair("TcpMaxConn", -1), Pair("TcpPassiveOpens", 42)));
}

TEST(ParseProcNetCounters, EmptyTextIsNoCounters) {
  absl::StatusOr<Counters> counters = ParseProcNetCounters("");
  ASSERT_TRUE(counters.ok());
  EXPECT_TRUE(counters->empty());
}

TEST(ParseProcNetCounters, HeaderWithoutValuesNamesPrefix) {
  absl::StatusOr<Counters> last = ParseProcNetCounters("Tcp: A B\nTcp: 1 2\nIpExt: InOctets\n");
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(last.status().message()), HasSubstr("IpExt"));

  // A header followed by another prefix's header: the first has no value line.
  absl::StatusOr<Counters> middle = ParseProcNetCounters("TcpExt: A\nIpExt: B\nIpExt: 1\n");
  ASSERT_FALSE(middle.ok());
  EXPECT_THAT(std::string(middle.status().message()), HasSubstr("TcpExt"));
}

TEST(ParseProcNetCounters, CountMismatchNamesPrefix) {
  absl::StatusOr<Counters> counters = ParseProcNetCounters("Udp: InDatagrams NoPorts\nUdp: 5\n");
  ASSERT_FALSE(counters.ok());
  EXPECT_EQ(counters.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(counters.status().message()), HasSubstr("Udp"));
  EXPECT_THAT(std::string(counters.status().message()), HasSubstr("2 names but 1 values"));
}

TEST(ParseProcNetCounters, NonNumericValueNamesPrefixAndField) {
  absl::StatusOr<Counters> counters = ParseProcNetCounters("Icmp: InMsgs InErrors\nIcmp: 1 x7\n");
  ASSERT_FALSE(counters.ok());
  EXPECT_EQ(counters.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(counters.status().message()), HasSubstr("Icmp"));
  EXPECT_THAT(std::string(counters.status().message()), HasSubstr("InErrors"));
  EXPECT_THAT(std::string(counters.status().message()), HasSubstr("x7"));
}

TEST(ParseProcNetCounters, LineWithoutPrefixIsAnError) {
  EXPECT_FALSE(ParseProcNetCounters("no colon here\n1 2\n").ok());
}

TEST(CounterDeltas, SubtractsAndTreatsMissingAsZero) {
  const Counters before = {{"TcpPassiveOpens", 10}, {"TcpExtListenDrops", 4}, {"Gone", 7}};
  const Counters after = {{"TcpPassiveOpens", 15}, {"TcpExtListenDrops", 4}, {"New", 3}};
  EXPECT_THAT(CounterDeltas(before, after),
              UnorderedElementsAre(Pair("TcpPassiveOpens", 5), Pair("TcpExtListenDrops", 0),
                                   Pair("Gone", -7), Pair("New", 3)));
}

TEST(CounterDeltas, GaugeThatFellIsNegative) {
  const Counters before = {{"TcpCurrEstab", 20}};
  const Counters after = {{"TcpCurrEstab", 12}};
  EXPECT_EQ(CounterDeltas(before, after).at("TcpCurrEstab"), -8);
}

TEST(NonZero, KeepsPositiveAndNegativeDropsZero) {
  const Counters counters = {{"A", 0}, {"B", 3}, {"C", -1}};
  EXPECT_THAT(NonZero(counters), UnorderedElementsAre(Pair("B", 3), Pair("C", -1)));
  EXPECT_TRUE(NonZero({}).empty());
}

TEST(ReadKernelCounters, MergesNetstatAndSnmpFromFixtureDir) {
  absl::StatusOr<Counters> counters = ReadKernelCounters(kFixtureProc);
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_TRUE(counters->contains("TcpExtListenOverflows"));
  EXPECT_TRUE(counters->contains("TcpPassiveOpens"));
  EXPECT_EQ(counters->at("TcpMaxConn"), -1);
}

TEST(ReadKernelCounters, MissingDirIsAnErrorNamingThePath) {
  absl::StatusOr<Counters> counters = ReadKernelCounters("/nonexistent-synq-proc");
  ASSERT_FALSE(counters.ok());
  EXPECT_THAT(std::string(counters.status().message()),
              HasSubstr("/nonexistent-synq-proc/net/netstat"));
}

TEST(ReadKernelCounters, LiveProcHasListenCountersAndMonotonicPassiveOpens) {
  absl::StatusOr<Counters> first = ReadKernelCounters();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->contains("TcpExtListenOverflows"));
  EXPECT_TRUE(first->contains("TcpExtListenDrops"));
  EXPECT_TRUE(first->contains("TcpPassiveOpens"));
  absl::StatusOr<Counters> second = ReadKernelCounters("/proc");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GE(CounterDeltas(*first, *second).at("TcpPassiveOpens"), 0);
}

}  // namespace
}  // namespace synq::common
