// One trial of a knee search: the sweep point's plan with the searched flood set to a steady
// rate for the trial's length, and the verdict on the run it produced.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "controller/scenario/scenario.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::search {

// Attempts a trial schedules: rate x trial, rounded, at least 1.
int64_t TrialConnections(double rate, std::chrono::nanoseconds trial);

// The plan of one trial: `point` with the searched flood's rate set to `rate` and its
// connections to TrialConnections (a steady launch window of `trial`); every other field as
// written. Fails when the scenario has no such flood.
absl::StatusOr<RunPlan> TrialPlan(const RunPlan& point, const SearchDef& def, double rate);

// Drops the target's host counted (namespace-wide nstat deltas): ListenDrops counts every drop of
// a listening socket (accept-queue overflows and SYN-queue drops alike); on kernels where it
// does not, ListenOverflows + TCPReqQFullDrop is the larger. Absent when the flood's target is
// not a listener with an agent on its host, or that host's counters were not collected.
std::optional<double> ServerDrops(const synq::result::v1::Run& run,
                                  const synq::result::v1::Flood& flood);

// Judges one trial's run by the criterion: the attempts that failed on the client (reset,
// refused, timed out, error) or were never launched (dropped by the generator), and the server's
// drops; loss = the larger of the two over the attempts scheduled. NDR passes only with no loss
// at all; PDR with loss <= loss_percent. A run with errors fails with the errors as its reason.
synq::result::v1::SearchTrial JudgeTrial(const synq::result::v1::Run& run, const SearchDef& def,
                                         double rate, const std::string& phase);

}  // namespace synq::controller::search
