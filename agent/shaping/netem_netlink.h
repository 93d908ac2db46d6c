// The netem backend over rtnetlink (libmnl): pure encoders/decoders for the qdisc messages, so
// they can be checked byte for byte without a kernel, and the few calls that send them.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/shaping/shaper.h"

namespace synq::agent {

// The root qdisc handle synq installs ("5171:"), so removal never deletes someone else's qdisc.
inline constexpr uint32_t kNetemHandle = 0x51710000U;
// Packets netem may hold; tc's default of 1000 overflows at 5k packets/s with 200 ms of delay.
inline constexpr uint32_t kNetemLimit = 10000;
// The kernel's psched tick is 2^6 ns since 2.6.31 (PSCHED_SHIFT); tc_netem_qopt counts in ticks.
inline constexpr int kPschedShift = 6;
// Enough for every message built here (callers align buffers for nlmsghdr: alignas(8)).
inline constexpr size_t kNetemMessageBuffer = 512;

// What netem is asked to do, in the kernel's units.
struct NetemParams {
  uint64_t latency_ns = 0;
  uint64_t jitter_ns = 0;
  uint32_t limit = kNetemLimit;
  uint32_t loss = 0;                   // probability scaled to UINT32_MAX (100% = UINT32_MAX)
  uint64_t rate_bytes_per_second = 0;  // 0 = unlimited
  bool operator==(const NetemParams&) const = default;
};

// Conversions between a request and netem's units (loss rounds like tc: 1% = 42949673).
NetemParams NetemParamsFrom(const ShapingRequest& request);
uint32_t LossPercentToProbability(double percent);
double LossProbabilityToPercent(uint32_t probability);

// A qdisc as an RTM_NEWQDISC (dump or notification) describes it.
struct QdiscInfo {
  int ifindex = 0;
  uint32_t handle = 0;
  uint32_t parent = 0;
  std::string kind;
  std::optional<NetemParams> netem;  // set when kind == "netem"
};

// Builds RTM_NEWQDISC (NLM_F_REQUEST|ACK|CREATE|EXCL, i.e. `tc qdisc add`) of a root netem qdisc
// with handle kNetemHandle on ifindex into buf. TCA_OPTIONS holds struct tc_netem_qopt followed
// by TCA_NETEM_LATENCY64 and TCA_NETEM_JITTER64 (ns), then, when rate is set, TCA_NETEM_RATE
// (struct tc_netem_rate, rate clamped to u32) and TCA_NETEM_RATE64 when the rate needs 64 bits.
// Returns the message (a view into buf). buf must hold kNetemMessageBuffer bytes.
std::span<const uint8_t> BuildNetemAdd(std::span<uint8_t> buf, int ifindex,
                                       const NetemParams& params, uint32_t seq);
// RTM_DELQDISC of the root qdisc with `handle` (the kernel refuses when the root is another one).
std::span<const uint8_t> BuildRootQdiscDelete(std::span<uint8_t> buf, int ifindex, uint32_t handle,
                                              uint32_t seq);
// RTM_GETQDISC dump request (the kernel dumps every interface; filter with ParseQdisc's ifindex).
std::span<const uint8_t> BuildQdiscDump(std::span<uint8_t> buf, uint32_t seq);

// Decodes one RTM_NEWQDISC message; netem options are decoded when the kind is netem
// (latency/jitter from the 64-bit attributes when present, else from the psched ticks).
absl::StatusOr<QdiscInfo> ParseQdisc(const nlmsghdr* nlh);

// Kernel operations, in the calling thread's network namespace.
absl::Status InstallNetem(int ifindex, const NetemParams& params);
// Removes synq's root netem on ifindex; NotFound when there is none (or another qdisc is root).
absl::Status RemoveNetem(int ifindex);
// Every qdisc of ifindex.
absl::StatusOr<std::vector<QdiscInfo>> ListQdiscs(int ifindex);

// Tries to create a netem qdisc on the loopback of a private, throwaway network namespace.
BackendSupport ProbeNetemInPrivateNamespace();

}  // namespace synq::agent
