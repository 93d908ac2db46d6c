#include "controller/result/summary_line.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/result/format.h"

namespace synq::controller::result {

std::string RenderSummaryLine(const v1::Result& result, const v1::Run& run) {
  std::vector<std::string> failed;
  for (const auto& e : run.expectations()) {
    if (!e.passed()) {
      failed.push_back("expectations");
      break;
    }
  }
  if (run.has_baseline() && !run.baseline().passed()) failed.push_back("regression");
  if (!run.errors().empty()) failed.push_back("errors");
  std::string line = absl::StrCat("synq-summary scenario=", result.scenario(),
                                  " run=", run.index() + 1, "/", result.runs_size());
  const std::string params = ParamsText(run, ",");
  if (!params.empty()) absl::StrAppend(&line, " params=", params);
  absl::StrAppend(&line, " verdict=",
                  failed.empty() ? "pass" : absl::StrCat("FAIL(", absl::StrJoin(failed, ","), ")"));
  if (run.has_baseline()) {
    absl::StrAppend(
        &line, " baseline=", run.baseline().baseline_run_index() < 0 ? "unmatched" : "compared");
  }
  absl::StrAppend(&line, " duration_ms=", FormatNumber(run.duration_ms()));
  if (run.has_start_skew_ms())
    absl::StrAppend(&line, " skew_ms=", FormatNumber(run.start_skew_ms()));
  // Sorted by name (proto maps have no order); member rows of a group ("F@M") are left to
  // result.json: the merged row carries the group's figures.
  const std::map<std::string, v1::Flood> floods(run.floods().begin(), run.floods().end());
  for (const auto& [name, f] : floods) {
    if (name.find('@') != std::string::npos) continue;
    absl::StrAppend(&line, " flood.", name, "=", f.attempted(), "/", f.established(), "/",
                    f.refused(), "/", f.reset(), "/", f.timed_out());
    if (f.has_connect_latency_ms()) {
      absl::StrAppend(&line, " flood.", name,
                      ".p99_ms=", FormatNumber(f.connect_latency_ms().p99()));
    }
  }
  const std::map<std::string, v1::Listener> listeners(run.listeners().begin(),
                                                      run.listeners().end());
  for (const auto& [name, l] : listeners) {
    if (name.find('@') != std::string::npos) continue;
    // One key per figure (not "accepted:N", which is how the table writes fates).
    if (l.has_backlog_effective()) {
      absl::StrAppend(&line, " listener.", name, ".backlog=", l.backlog_effective());
    }
    absl::StrAppend(&line, " listener.", name, ".accepted=", l.accepted(), " listener.", name,
                    ".peak=", l.accept_queue_peak());
  }
  return line;
}

}  // namespace synq::controller::result
