// The bounds every scenario field and agent request is held to, in one place so the controller
// (scenario loader, lease) and the agent (request validation) agree. docs/scenario.md lists them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace synq::common {

// Any duration a scenario or a request gives: a day is far beyond any run synq is for, and far
// from int64 nanoseconds' 292 years, so sums of a few durations cannot overflow.
inline constexpr std::chrono::nanoseconds kMaxDuration = std::chrono::hours(24);
// connect_timeout and lifetime: one connection's life. An hour is past any SYN retry schedule
// (tcp_syn_retries 127 with the 120 s RTO cap is ~4 h, but nobody waits that out in a test).
inline constexpr std::chrono::nanoseconds kMaxConnectTimeout = std::chrono::hours(1);
// Link shaping delay and jitter: the kernel's netem keeps them per packet; a minute already
// makes every handshake time out.
inline constexpr std::chrono::nanoseconds kMaxShapingDelay = std::chrono::minutes(1);
// The sampler wakes once per interval: below a millisecond it burns a core for nothing.
inline constexpr std::chrono::nanoseconds kMinSampleInterval = std::chrono::milliseconds(1);
// A run id (the controller makes "<scenario>-<pid>-<time>-<index>"); it names journal entries.
inline constexpr size_t kMaxRunIdLength = 256;
// A run's lease (the agent ends it by itself after this long without its controller): the
// longest flood budget (start_after + window + timeout + lifetime + hold, each at most a day)
// twice over fits.
inline constexpr std::chrono::nanoseconds kMaxLease = std::chrono::hours(24 * 7);

// Bytes sent after connect: one message, a request line or a TLS hello, not a bulk transfer.
inline constexpr uint64_t kMaxPayloadBytes = 64 * 1024;
// Attempts of one flood (0.4's 200k held connections fit fifty times over).
inline constexpr int64_t kMaxConnections = 10'000'000;
// Connects in flight at once per flood.
inline constexpr int64_t kMaxConcurrency = 1'000'000;
// Connects per second of one flood (constant, ramp ends, each step).
inline constexpr double kMaxFloodRate = 10'000'000;
// Accepts per second of a paced listener.
inline constexpr double kMaxAcceptRate = 1'000'000'000;
// Rings per flood.
inline constexpr int64_t kMaxThreads = 256;
// Steps of a `rate: {steps: [...]}` profile.
inline constexpr int64_t kMaxRateSteps = 10'000;
// Pause windows of one listener.
inline constexpr int64_t kMaxPauses = 1'000;
// Source addresses of one flood: embedded hosts get at most this many (one /24 each).
inline constexpr int64_t kMaxSourceCount = 254;
// Connection records kept per flood when asked for (each is ~200 bytes in the result).
inline constexpr uint64_t kMaxRecords = 10'000'000;
// Listeners, floods, shaping entries or settings in one request.
inline constexpr int64_t kMaxItemsPerRequest = 1'000;
// Linux interface names (IFNAMSIZ - 1).
inline constexpr uint64_t kMaxInterfaceName = 15;
// Names of runs, listeners and floods in requests.
inline constexpr uint64_t kMaxNameLength = 256;

}  // namespace synq::common
