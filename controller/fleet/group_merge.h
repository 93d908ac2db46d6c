// The merged rows of a run with host groups: a flood (or listener) placed on a group has a row
// per member ("f1@clients-3") and the merged row under its own key ("f1").
#pragma once

#include "absl/status/status.h"
#include "controller/fleet/expand.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::fleet {

// Adds to `run` the merged row of every grouped flood and listener of `plan`, marks member rows
// and member hosts with their group (and endpoint). Flood rows: counts and error counts add,
// the latency histogram merges exactly (common::Histogram) and the latency summary is read
// from the merged histogram (max: the largest member's), fates add (a joined fate only when
// every member's server side was observed), decision times and connections are concatenated,
// series add by second (rates too: the group's offered rate; a second's latency summary is
// left out, having no histogram to merge), start lateness is the latest member's, open_peak the sum
// (an upper bound), engine the distinct members' engines joined with "+". Members that returned no
// row (their host failed) are left out of the merge and named in run.not_observed. Listener rows:
// accepted adds, accept_queue_peak is the largest member's. FailedPrecondition when member
// histograms use different resolutions (the merged histogram is then left out).
absl::Status MergeGroupRows(const GroupPlan& plan, synq::result::v1::Run* run);

}  // namespace synq::controller::fleet
