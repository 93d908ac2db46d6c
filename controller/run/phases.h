// The phases of one run, each a function over the run's context so that each can be tested
// alone against fake agents. Begin -> Prepare -> Schedule -> Collect -> End, then the result
// builder (controller/result/run_builder.h) assembles the typed result from `ctx.inputs`.
// A phase that fails records it with ctx.Fail and later phases skip their work; End always runs.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/run/run_context.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller {

// Run id and lease; BeginRun and a Watch stream on every agent (samples go to ctx.inputs).
void BeginPhase(RunContext& ctx);
// Settings (read back), shaping (read back), listeners, packet capture.
void PreparePhase(RunContext& ctx);
// Clock offsets of every host, flood targets resolved once, StartFloods at one instant.
void SchedulePhase(RunContext& ctx);
// Waits for every flooding host, then one final snapshot per host; pcaps saved to out_dir.
void CollectPhase(RunContext& ctx);
// EndRun on every agent whatever happened (agents restore settings), Watch streams closed.
void EndPhase(RunContext& ctx);

// Estimated clock offset of an agent: agent clock minus controller clock, from the GetClock
// round trip with the smallest RTT. `rtt` receives that RTT.
absl::StatusOr<std::chrono::nanoseconds> MeasureClockOffset(
    AgentClient& client, int rounds, std::chrono::nanoseconds* rtt,
    const std::function<Clock::time_point()>& now = [] { return Clock::now(); });

// Clock offsets of every host (into ctx.inputs), `rounds` GetClock rounds, each sent to every
// agent at once; each host's offset is from its round trip with the smallest RTT. Failures go to
// ctx. Returns the slowest round's duration (first send to last answer): the measured cost of
// one fan-out to every agent.
std::chrono::nanoseconds MeasureClockOffsets(RunContext& ctx, int rounds);

// Deadline of Collect's wait for the floods: until the scheduled start, the longest flood's
// budget, and a margin. And of the collection itself (larger with --connections).
std::chrono::nanoseconds CollectWaitTimeout(const RunContext& ctx);
std::chrono::nanoseconds CollectTimeout(const RunContext& ctx);

// Floods of `run` that measured nothing because every attempt ended in an error of its own
// (ENETUNREACH, EADDRNOTAVAIL, EPERM...: no connect was refused, reset, timed out or
// established): one failure of the flooding host each, naming the flood and the errors. A flood
// the scenario's expectations ask about (a path floods.NAME.errors[.ERRNO] or
// floods.NAME.fates.error) is the outcome under test and is left to them.
std::vector<RunFailure> FloodsThatOnlyFailed(const Scenario& scenario,
                                             const ::synq::result::v1::Run& run);
bool ExpectsFloodErrors(const Scenario& scenario, const std::string& flood);

// Worst case for a flood to finish: every connect waits its full timeout.
std::chrono::nanoseconds FloodBudget(const FloodDef& flood);

}  // namespace synq::controller
