// Runs one connect flood on one thread, on io_uring or (where io_uring is refused) epoll: no
// thread and no blocking call per connection, and no memory per attempt unless records are asked
// for. Both engines share the schedule and accounting (flood_core.h).
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/flood/flood_spec.h"

namespace synq::agent {

// Runs `spec` on the calling thread, as one ring (spec.engine; kAuto = ProcessFloodEngine()).
// result.engine names the engine that ran. Threads and worker processes each call it with
// their share of the flood (spec.schedule_stride/offset, concurrency, source_ports); spec.threads
// is not acted on here.
//
// Schedule (open loop). The schedule starts at `run_start + spec.start_after` (CLOCK_REALTIME;
// the call sleeps until then). Attempt k of the whole flood (k % schedule_stride ==
// schedule_offset) is due at RateSchedule(profile).Due(k) after that instant, whatever the
// server does; attempts are bounded by `connections` (k < connections, when > 0) and by
// `duration` (nothing due at or after it, when > 0). If the call starts after the schedule's
// start, the attempts already due are launched at once and counted late. A constant rate of 0 is
// closed loop instead: each attempt is launched when there is room and its scheduled instant is
// its launch.
//
// Room. close keep: at most `concurrency` connects in flight (established sockets are held
// until the end and bounded by `connections`). close rst/fin: at most `concurrency` sockets open
// (connecting or established), each closed `lifetime` after its connect completed (rst: SO_LINGER
// {1, 0} so an RST and no TIME_WAIT; fin: a plain close, so TIME_WAIT on this side).
//
// Late and dropped launches. An attempt launched more than 1 ms after its due instant counts in
// launches_late (and in its second's `late`); launch_lag_max is the largest lag. An attempt that
// falls due while there is no room is DROPPED at once: it counts in launches_dropped and its
// second's `dropped`, is never launched later, and is not in `attempted`. A generator that
// cannot keep up therefore shows it instead of quietly lowering the load.
//
// Measurements. Connect latency is from the attempt's SCHEDULED instant (no coordinated
// omission). Every attempt launched gets exactly one outcome (attempted == the sum of the
// outcomes): established (held to the end, or closed by the flood: `closed`), reset, refused,
// timed out (each connect has a deadline of `connect_timeout`: a linked IORING_OP_LINK_TIMEOUT,
// or epoll's deadline queue), or an error
// by errno name ("EOF" for an orderly close by the peer). `series` has one FloodSecond per second
// of the schedule; outcomes, lateness and drops go to the second the attempt was scheduled in.
// `answered` counts established connections that received at least one byte. Records: one
// ConnectionRecord per attempt only when keep_records, at most max_records (0 = 200,000), the
// rest counted in records_dropped. Per open socket the engine keeps a 24-byte slot (plus a 16-byte
// close deadline for rst/fin), nothing per finished attempt.
//
// End. Launching ends when the bounds are reached; then close keep waits for `hold` after the
// last connect resolved (earlier if no socket is left), close rst/fin until every socket closed.
// Held sockets (close keep) are handed over open in held_sockets, their local ports in `held`.
// When `stop` becomes true it returns early: connects in flight count as errors "ECANCELED",
// attempts not launched yet are not counted, open sockets are closed.
//
// Errors only for a bad spec (ValidateFloodSpec) and setup problems: ring creation, missing
// opcodes, or an fd limit too low for the sockets this ring may hold (checked up front after
// raising the soft limit to the hard one).
absl::StatusOr<FloodResult> RunFlood(const FloodSpec& spec,
                                     std::chrono::system_clock::time_point run_start,
                                     const std::atomic<bool>& stop);

// Checks that `needed` more descriptors fit under RLIMIT_NOFILE, raising the soft limit to the
// hard one first. The error names both limits and the need.
absl::Status EnsureFdBudget(uint64_t needed);

// Checks a spec's fields: a bound (connections >= 1 or duration > 0), concurrency >= 1, a valid
// rate profile (and `rate` agreeing with it), connect_timeout > 0, hold, duration, lifetime >= 0
// (lifetime only with close rst/fin), close keep with rate 0 needs connections, an IPv4/IPv6
// target, a parseable source of the target's family, source_ports of the target's family with
// usable ports, schedule_offset < schedule_stride. InvalidArgument naming the field.
absl::Status ValidateFloodSpec(const FloodSpec& spec);

// The rate profile a spec runs: spec.profile, except that a constant profile takes spec.rate
// when its own rate is 0 (callers may set either).
RateProfile EffectiveProfile(const FloodSpec& spec);

// How many attempts of the whole flood the spec's bounds allow (connections and/or the schedule
// before duration); UINT64_MAX when unbounded in count (rate 0 for a duration).
uint64_t ScheduledAttempts(const FloodSpec& spec);

// The engine a process runs its floods on, and why it is not io_uring (empty when it is).
struct FloodEngineChoice {
  FloodEngine engine = FloodEngine::kIoUring;
  std::string note;
};

// "auto", "io_uring" or "epoll"; InvalidArgument naming --flood-engine otherwise.
absl::StatusOr<FloodEngine> ParseFloodEngine(absl::string_view name);
const char* FloodEngineName(FloodEngine engine);

// Whether this process may set up an io_uring with the opcodes a flood needs: OK, or the errno's
// status with the reason (seccomp EPERM, kernel.io_uring_disabled, ENOSYS, a missing opcode).
absl::Status ProbeIoUring();

// Resolves --flood-engine once at start: kAuto probes io_uring and falls back to epoll with the
// reason in `note`; kIoUring fails (FailedPrecondition, with the reason) when io_uring is
// refused; kEpoll is taken as asked.
absl::StatusOr<FloodEngineChoice> ChooseFloodEngine(FloodEngine asked);

// The engine floods with FloodSpec.engine == kAuto run on in this process (io_uring until set).
// Set once at agent start; flood worker processes get the resolved engine in their request.
void SetProcessFloodEngine(FloodEngineChoice choice);
FloodEngineChoice ProcessFloodEngine();

// The symbolic name of an errno value ("ECONNREFUSED"), or "errno N" if it has none.
std::string ErrnoName(int err);

}  // namespace synq::agent
