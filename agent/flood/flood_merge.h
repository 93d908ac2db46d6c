// Merges the results of a flood's shares (rings and worker processes) into one flood result.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "agent/flood/flood_spec.h"

namespace synq::agent {

// How the shares' open_peak figures combine.
enum class PeakMerge {
  kMax,  // the shares counted one shared counter (rings in one process): the peak is the max
  kSum,  // separate processes: the sum of their peaks (an upper bound; exact when every share
         // peaks at its end, as close-keep floods do)
};

// Counts, errors, records and records_dropped add; histograms (overall and per second) merge
// exactly; series merge by second; held connections and held sockets are concatenated (the
// sockets move into the result); started_at is the earliest; launch_lag_max the largest;
// sources the union in first-seen order; worker_errors concatenated; keepalives are all kept.
// threads and workers add (the caller overwrites them when it knows better). Empty input:
// an empty result. FailedPrecondition when two histograms use different resolutions.
absl::StatusOr<FloodResult> MergeFloodResults(std::vector<FloodResult> parts, PeakMerge peaks);

}  // namespace synq::agent
