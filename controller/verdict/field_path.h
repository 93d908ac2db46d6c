// Field paths of expectations ("floods.f1.established", "hosts.server.counters.X",
// "params.listeners.l1.backlog"): checked against the result model's descriptors and the
// scenario's names, and read from a run's typed result by reflection.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "controller/scenario.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::verdict {

// OK when `path` names a number in every run of `scenario`: a numeric field of the Run message
// reached through its messages and maps (keys of floods, listeners and hosts must be names in the
// scenario; counter, drop-event and errno keys may be any such name), or `params.<sweep path>` of
// one of the scenario's numeric or boolean sweep axes. Otherwise InvalidArgument whose message
// starts with the path and says what exists there.
absl::Status CheckFieldPath(const Scenario& scenario, const std::string& path);

// The number at `path` in `run` (a path that CheckFieldPath accepted). Absent entries of counter,
// drop-event, errno and histogram maps read 0; bools read 1/0. Errors (message starting with the
// path): NotFound for a flood, listener or host missing from this run; FailedPrecondition
// "not_observed" for an unset optional value, an absent setting or param, drop events the host
// could not observe, or a host that failed.
absl::StatusOr<double> ReadFieldPath(const ::synq::result::v1::Run& run, const std::string& path);

}  // namespace synq::controller::verdict
