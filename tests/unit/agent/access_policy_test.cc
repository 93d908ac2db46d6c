// Proves the allow-list arithmetic: CIDR parsing (prefix bounds, host bits refused, bare
// addresses as /32 and /128), membership for IPv4, IPv6 and IPv4-mapped IPv6 targets, the refusal
// naming flood, target and list, the host default holding loopback, and the listener address
// check (own addresses and wildcards pass, a foreign one is named).
#include "agent/access_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace synq::agent {
namespace {

using ::testing::HasSubstr;

common::SocketAddress At(const char* text) { return *common::ParseSocketAddress(text); }

TEST(Cidr, ParsesPrefixesAndBareAddresses) {
  EXPECT_EQ(ParseCidr("10.0.0.0/8")->ToString(), "10.0.0.0/8");
  EXPECT_EQ(ParseCidr("192.0.2.7")->ToString(), "192.0.2.7/32");
  EXPECT_EQ(ParseCidr("fd00::/64")->ToString(), "fd00::/64");
  EXPECT_EQ(ParseCidr("::1")->ToString(), "::1/128");
  EXPECT_EQ(ParseCidr("0.0.0.0/0")->ToString(), "0.0.0.0/0");
}

TEST(Cidr, RefusesHostBitsBadPrefixesAndNames) {
  EXPECT_THAT(ParseCidr("10.0.0.1/8").status().message(), HasSubstr("did you mean 10.0.0.0/8"));
  EXPECT_THAT(ParseCidr("10.0.0.0/33").status().message(), HasSubstr("0..32"));
  EXPECT_THAT(ParseCidr("fd00::/129").status().message(), HasSubstr("0..128"));
  EXPECT_FALSE(ParseCidr("example.com/8").ok());
  EXPECT_FALSE(ParseCidr("10.0.0.0/x").ok());
}

TEST(Cidr, ContainsByPrefixAndFamily) {
  const Cidr net = *ParseCidr("198.18.0.0/15");
  EXPECT_TRUE(net.Contains(At("198.18.0.1:80")));
  EXPECT_TRUE(net.Contains(At("198.19.255.255:80")));  // last address of the /15
  EXPECT_FALSE(net.Contains(At("198.20.0.0:80")));     // first one after it
  EXPECT_FALSE(net.Contains(At("[::1]:80")));
  // An IPv4-mapped IPv6 target is the IPv4 address it carries.
  EXPECT_TRUE(net.Contains(At("[::ffff:198.18.3.4]:80")));
  const Cidr v6 = *ParseCidr("fd00:1::/32");
  EXPECT_TRUE(v6.Contains(At("[fd00:1:ffff::9]:80")));
  EXPECT_FALSE(v6.Contains(At("[fd00:2::9]:80")));
}

TEST(TargetAllowList, RefusalNamesFloodTargetAndList) {
  auto list = TargetAllowList::Parse("127.0.0.2/32, 10.1.0.0/16");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->CheckTarget("f1", At("10.1.200.3:80")).ok());
  absl::Status refused = list->CheckTarget("f1", At("127.0.0.1:80"));
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(refused.message(),
            "floods.f1.target: 127.0.0.1 is outside the targets this agent accepts "
            "(--allow-targets 127.0.0.2/32,10.1.0.0/16)");
}

TEST(TargetAllowList, EmptyOrBadFlagIsAnError) {
  EXPECT_THAT(TargetAllowList::Parse(" , ").status().message(), HasSubstr("empty"));
  EXPECT_THAT(TargetAllowList::Parse("10.0.0.0/8,nope").status().message(),
              HasSubstr("--allow-targets: 'nope'"));
}

TEST(TargetAllowList, HostDefaultHoldsLoopbackFirst) {
  const std::vector<std::string> list = TargetAllowList::HostDefault().EffectiveStrings();
  ASSERT_GE(list.size(), 2u);
  EXPECT_EQ(list[0], "127.0.0.0/8");
  EXPECT_EQ(list[1], "::1/128");
  EXPECT_TRUE(TargetAllowList::HostDefault().CheckTarget("f", At("127.5.6.7:1")).ok());
  // TEST-NET-3 is attached to no test machine's interfaces.
  EXPECT_EQ(TargetAllowList::HostDefault().CheckTarget("f", At("203.0.113.9:1")).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(ListenerAddress, OwnAddressesAndWildcardsPassOthersAreNamed) {
  EXPECT_TRUE(CheckListenerAddress("l1", "").ok());
  EXPECT_TRUE(CheckListenerAddress("l1", "0.0.0.0").ok());
  EXPECT_TRUE(CheckListenerAddress("l1", "::").ok());
  EXPECT_TRUE(CheckListenerAddress("l1", "127.0.0.9").ok());
  for (const std::string& own : OwnAddresses()) {
    if (own.find("fe80") == 0) continue;  // link-local needs a scope to bind
    EXPECT_TRUE(CheckListenerAddress("l1", own).ok()) << own;
  }
  absl::Status foreign = CheckListenerAddress("l1", "203.0.113.9");
  EXPECT_EQ(foreign.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(foreign.message(),
              HasSubstr("listeners.l1.address: 203.0.113.9 is not an address of this host"));
}

}  // namespace
}  // namespace synq::agent
