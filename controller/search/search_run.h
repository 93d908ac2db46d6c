// Runs the knee search of one sweep point: every trial a full run through the caller's run
// machinery (so settings, listeners and restore apply to each, and a fresh run restarts the
// listeners, which empties their accept queues between trials), then the point's result: the
// knee trial's run (or the last trial's when none passed) with `search` filled.
#pragma once

#include <chrono>
#include <functional>

#include "controller/scenario/scenario.h"
#include "controller/search/knee_search.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::search {

// Runs one plan end to end and returns its result (controller::Orchestrator::Run in synq).
using TrialRunner = std::function<synq::result::v1::Run(const RunPlan& plan)>;

struct SearchHooks {
  // Wall clock for search_ms; tests inject their own.
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
  // Called after each trial is judged (progress lines).
  std::function<void(const synq::result::v1::SearchTrial&)> on_trial;
};

// The bounds SearchKnee runs with for `def`.
KneeBounds BoundsFor(const SearchDef& def);

// `point.scenario.search` must be set. A trial whose run has errors ends the search; its errors
// are kept in the returned run (prefixed with the trial's rate) when it is not that run.
synq::result::v1::Run RunSearch(const RunPlan& point, const TrialRunner& run_trial,
                                const SearchHooks& hooks = {});

}  // namespace synq::controller::search
