// Proves the netem rtnetlink messages are what the kernel (and tc) expect, byte for byte, that
// a qdisc dump decodes back to the same parameters, and that ProbeNetem tells the truth here.
#include <linux/gen_stats.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "agent/shaping/netem_netlink.h"
#include "common/command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace synq::agent {
using common::CommandResult;
using common::FindProgram;
using common::RunCommand;

namespace {

using ::testing::HasSubstr;

// Little-endian byte writer for expected messages (x86-64 and arm64 are both little endian).
class Bytes {
 public:
  Bytes& U8(uint8_t v) { return Raw(&v, 1); }
  Bytes& U16(uint16_t v) { return Raw(&v, 2); }
  Bytes& U32(uint32_t v) { return Raw(&v, 4); }
  Bytes& U64(uint64_t v) { return Raw(&v, 8); }
  Bytes& Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    data_.insert(data_.end(), b, b + n);
    return *this;
  }
  Bytes& Pad() {
    while (data_.size() % 4 != 0) data_.push_back(0);
    return *this;
  }
  // An attribute header (len covers header + payload, unpadded).
  Bytes& Attr(uint16_t type, uint16_t payload_len) { return U16(4 + payload_len).U16(type); }
  const std::vector<uint8_t>& data() const { return data_; }
  size_t size() const { return data_.size(); }

 private:
  std::vector<uint8_t> data_;
};

std::vector<uint8_t> ToVector(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

NetemParams TwoHundredMs() {
  NetemParams p;
  p.latency_ns = 200'000'000;
  p.jitter_ns = 10'000'000;
  p.limit = 1000;
  p.loss = LossPercentToProbability(1.0);
  p.rate_bytes_per_second = 125'000;  // 1 Mbit/s
  return p;
}

TEST(NetemEncoding, AddIsRootNetemWithStructThenSixtyFourBitAttributes) {
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  const auto msg = BuildNetemAdd(buf, 7, TwoHundredMs(), 42);

  Bytes want;
  want.U32(120)
      .U16(RTM_NEWQDISC)
      .U16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
      .U32(42)
      .U32(0);
  // tcmsg: family, 3 pad bytes, ifindex, handle, parent, info.
  want.U8(AF_UNSPEC).U8(0).U16(0).U32(7).U32(kNetemHandle).U32(TC_H_ROOT).U32(0);
  want.Attr(TCA_KIND, 6).Raw("netem", 6).Pad();
  want.Attr(TCA_OPTIONS, 24 + 12 + 12 + 20);
  // tc_netem_qopt: latency (psched ticks of 64 ns), limit, loss, gap, duplicate, jitter (ticks).
  want.U32(3'125'000).U32(1000).U32(42'949'673).U32(0).U32(0).U32(156'250);
  want.Attr(TCA_NETEM_LATENCY64, 8).U64(200'000'000);
  want.Attr(TCA_NETEM_JITTER64, 8).U64(10'000'000);
  want.Attr(TCA_NETEM_RATE, 16).U32(125'000).U32(0).U32(0).U32(0);
  ASSERT_EQ(want.size(), 120u);
  EXPECT_EQ(ToVector(msg), want.data());
}

TEST(NetemEncoding, StructMatchesWhatTcSendsForTheSameRequest) {
  // `tc qdisc add dev lo root netem delay 200ms 10ms loss 1% rate 1mbit limit 1000` (iproute2
  // 6.1, captured with strace) sends these 24 bytes as tc_netem_qopt.
  const uint8_t tc_qopt[24] = {0x08, 0xaf, 0x2f, 0x00, 0xe8, 0x03, 0x00, 0x00,
                               0x29, 0x5c, 0x8f, 0x02, 0x00, 0x00, 0x00, 0x00,
                               0x00, 0x00, 0x00, 0x00, 0x5a, 0x62, 0x02, 0x00};
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  const auto msg = BuildNetemAdd(buf, 1, TwoHundredMs(), 1);
  // nlmsghdr 16 + tcmsg 20 + TCA_KIND 12 + TCA_OPTIONS header 4.
  ASSERT_GE(msg.size(), 52u + 24u);
  EXPECT_EQ(0, std::memcmp(msg.data() + 52, tc_qopt, sizeof(tc_qopt)));
}

TEST(NetemEncoding, RateBeyondThirtyTwoBitsAddsRate64AndClampsTheStruct) {
  NetemParams p;
  p.latency_ns = 1;
  p.rate_bytes_per_second = 5'000'000'000;  // 40 Gbit/s
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  const auto msg = BuildNetemAdd(buf, 3, p, 1);

  Bytes tail;
  tail.Attr(TCA_NETEM_RATE, 16).U32(std::numeric_limits<uint32_t>::max()).U32(0).U32(0).U32(0);
  tail.Attr(TCA_NETEM_RATE64, 8).U64(5'000'000'000);
  ASSERT_GE(msg.size(), tail.size());
  EXPECT_EQ(std::vector<uint8_t>(msg.end() - tail.size(), msg.end()), tail.data());
}

TEST(NetemEncoding, NoRateMeansNoRateAttributes) {
  NetemParams p;
  p.latency_ns = 5'000'000;
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  const auto msg = BuildNetemAdd(buf, 3, p, 1);
  // header 16 + tcmsg 20 + kind 12 + options (4 + 24 + 12 + 12).
  EXPECT_EQ(msg.size(), 100u);
}

TEST(NetemEncoding, DeleteTargetsOurRootHandle) {
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  const auto msg = BuildRootQdiscDelete(buf, 9, kNetemHandle, 5);
  Bytes want;
  want.U32(36).U16(RTM_DELQDISC).U16(NLM_F_REQUEST | NLM_F_ACK).U32(5).U32(0);
  want.U8(AF_UNSPEC).U8(0).U16(0).U32(9).U32(kNetemHandle).U32(TC_H_ROOT).U32(0);
  EXPECT_EQ(ToVector(msg), want.data());
}

TEST(NetemEncoding, DumpRequestsEveryQdisc) {
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(BuildQdiscDump(buf, 8).data());
  EXPECT_EQ(nlh->nlmsg_type, RTM_GETQDISC);
  EXPECT_EQ(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
  EXPECT_EQ(nlh->nlmsg_seq, 8u);
  EXPECT_EQ(nlh->nlmsg_len, NLMSG_LENGTH(sizeof(tcmsg)));
}

TEST(NetemLoss, PercentScalesToUint32MaxLikeTc) {
  EXPECT_EQ(LossPercentToProbability(0), 0u);
  EXPECT_EQ(LossPercentToProbability(100), std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(LossPercentToProbability(1), 42'949'673u);
  EXPECT_NEAR(LossProbabilityToPercent(LossPercentToProbability(12.5)), 12.5, 1e-6);
}

TEST(NetemParamsFrom, ConvertsRequestUnits) {
  ShapingRequest r;
  r.delay = std::chrono::milliseconds(200);
  r.jitter = std::chrono::milliseconds(3);
  r.loss_percent = 100;
  r.rate_bits_per_second = 8'000'000;
  const NetemParams p = NetemParamsFrom(r);
  EXPECT_EQ(p.latency_ns, 200'000'000u);
  EXPECT_EQ(p.jitter_ns, 3'000'000u);
  EXPECT_EQ(p.loss, std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(p.rate_bytes_per_second, 1'000'000u);
  EXPECT_EQ(p.limit, kNetemLimit);
}

// A dump message as the kernel's netem_dump() lays it out, with the attributes around it that
// a real dump carries.
Bytes KernelDump(bool with_64bit) {
  Bytes options;
  options.U32(with_64bit ? 0xffffffffu : 1'562'500)
      .U32(10000)
      .U32(0x80000000u)
      .U32(0)
      .U32(0)
      .U32(15'625);  // 100 ms, 1 ms in ticks
  if (with_64bit) {
    options.Attr(TCA_NETEM_LATENCY64, 8).U64(300'000'000'000);  // 300 s: beyond u32 ticks
    options.Attr(TCA_NETEM_JITTER64, 8).U64(1'000'000);
  }
  options.Attr(TCA_NETEM_RATE, 16).U32(125'000).U32(0).U32(0).U32(0);
  options.Attr(TCA_NETEM_ECN, 4).U32(0);

  Bytes body;
  body.U8(AF_UNSPEC).U8(0).U16(0).U32(4).U32(kNetemHandle).U32(TC_H_ROOT).U32(2);
  body.Attr(TCA_KIND, 6).Raw("netem", 6).Pad();
  body.Attr(TCA_OPTIONS, static_cast<uint16_t>(options.size()))
      .Raw(options.data().data(), options.size());
  body.Attr(TCA_HW_OFFLOAD, 1).U8(0).Pad();
  body.Attr(TCA_STATS2 | NLA_F_NESTED, 12).Attr(TCA_STATS_BASIC, 8).U64(0);

  Bytes msg;
  msg.U32(static_cast<uint32_t>(16 + body.size())).U16(RTM_NEWQDISC).U16(NLM_F_MULTI).U32(1).U32(0);
  msg.Raw(body.data().data(), body.size());
  return msg;
}

TEST(NetemDecoding, KernelDumpDecodesWith64BitLatencyWinning) {
  const Bytes msg = KernelDump(true);
  auto info = ParseQdisc(reinterpret_cast<const nlmsghdr*>(msg.data().data()));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->ifindex, 4);
  EXPECT_EQ(info->handle, kNetemHandle);
  EXPECT_EQ(info->parent, TC_H_ROOT);
  EXPECT_EQ(info->kind, "netem");
  ASSERT_TRUE(info->netem.has_value());
  EXPECT_EQ(info->netem->latency_ns, 300'000'000'000u);
  EXPECT_EQ(info->netem->jitter_ns, 1'000'000u);
  EXPECT_EQ(info->netem->limit, 10000u);
  EXPECT_EQ(info->netem->loss, 0x80000000u);
  EXPECT_EQ(info->netem->rate_bytes_per_second, 125'000u);
}

TEST(NetemDecoding, OldKernelWithoutSixtyFourBitAttributesUsesTicks) {
  const Bytes msg = KernelDump(false);
  auto info = ParseQdisc(reinterpret_cast<const nlmsghdr*>(msg.data().data()));
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(info->netem.has_value());
  EXPECT_EQ(info->netem->latency_ns, 100'000'000u);
  EXPECT_EQ(info->netem->jitter_ns, 1'000'000u);
}

TEST(NetemDecoding, WhatWeSendDecodesToWhatWeAsked) {
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  NetemParams p = TwoHundredMs();
  p.rate_bytes_per_second = 5'000'000'000;
  const auto msg = BuildNetemAdd(buf, 11, p, 1);
  auto info = ParseQdisc(reinterpret_cast<const nlmsghdr*>(msg.data()));
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(info->netem.has_value());
  EXPECT_EQ(*info->netem, p);
}

TEST(NetemDecoding, OtherKindsHaveNoNetemParams) {
  Bytes msg;
  msg.U32(16 + 20 + 12).U16(RTM_NEWQDISC).U16(0).U32(0).U32(0);
  msg.U8(AF_UNSPEC).U8(0).U16(0).U32(1).U32(0).U32(TC_H_ROOT).U32(2);
  msg.Attr(TCA_KIND, 8).Raw("noqueue", 8);
  auto info = ParseQdisc(reinterpret_cast<const nlmsghdr*>(msg.data().data()));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->kind, "noqueue");
  EXPECT_FALSE(info->netem.has_value());
}

TEST(NetemDecoding, TruncatedOptionsAreRejected) {
  Bytes msg;
  msg.U32(16 + 20 + 12 + 12).U16(RTM_NEWQDISC).U16(0).U32(0).U32(0);
  msg.U8(AF_UNSPEC).U8(0).U16(0).U32(1).U32(kNetemHandle).U32(TC_H_ROOT).U32(2);
  msg.Attr(TCA_KIND, 6).Raw("netem", 6).Pad();
  msg.Attr(TCA_OPTIONS, 8).U32(1).U32(2);
  auto info = ParseQdisc(reinterpret_cast<const nlmsghdr*>(msg.data().data()));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NetemDecoding, NotAQdiscMessageIsRejected) {
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  const auto msg = BuildRootQdiscDelete(buf, 1, kNetemHandle, 1);
  EXPECT_FALSE(ParseQdisc(reinterpret_cast<const nlmsghdr*>(msg.data())).ok());
}

// The truth, independently of our code: does tc manage to add netem in a private namespace?
TEST(ProbeNetem, AgreesWithTcInAPrivateNamespace) {
  const BackendSupport support = ProbeNetem();
  if (!support.available) {
    EXPECT_FALSE(support.reason.empty());
  }
  if (::geteuid() != 0 || FindProgram("tc").empty() || FindProgram("unshare").empty()) {
    GTEST_SKIP() << "needs root, tc and unshare to cross-check; probe said available="
                 << support.available << " (" << support.reason << ")";
  }
  auto tc = RunCommand(
      {"unshare", "-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"});
  ASSERT_TRUE(tc.ok()) << tc.status();
  if (tc->exit_code == 0) {
    EXPECT_TRUE(support.available) << support.reason;
  } else {
    EXPECT_FALSE(support.available);
    if (tc->output.find("unknown") != std::string::npos) {
      EXPECT_EQ(support.reason, "sch_netem not in this kernel");
    }
    EXPECT_THAT(support.reason, HasSubstr("sch_netem"));
  }
}

}  // namespace
}  // namespace synq::agent
