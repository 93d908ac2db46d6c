#include "controller/search/knee_search.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "controller/result/format.h"

namespace synq::controller::search {

using result::FormatNumber;

double StopWidth(const KneeBounds& bounds, double hi) {
  return bounds.precision_is_percent ? bounds.precision / 100.0 * hi : bounds.precision;
}

double Midpoint(double lo, double hi) {
  const double mid = (lo + hi) / 2;
  return hi - lo >= 2 ? std::round(mid) : mid;
}

KneeOutcome SearchKnee(
    const KneeBounds& bounds,
    const std::function<TrialVerdict(double rate, const std::string& phase)>& trial) {
  KneeOutcome out;
  std::optional<double> lo;
  std::optional<double> hi;
  // One trial, recorded; false when the search must stop (the trial could not run, or the guard).
  auto run = [&](double rate, const char* phase) -> std::optional<bool> {
    if (static_cast<int>(out.steps.size()) >= bounds.max_trials) {
      out.note = absl::StrCat("stopped after ", bounds.max_trials, " trials");
      return std::nullopt;
    }
    const TrialVerdict v = trial(rate, phase);
    out.steps.push_back({rate, phase, v});
    if (v == TrialVerdict::kAbort) {
      out.note = absl::StrCat("the trial at ", FormatNumber(rate),
                              "/s could not run; the search stopped there");
      return std::nullopt;
    }
    return v == TrialVerdict::kPass;
  };
  auto finish = [&] {
    out.knee = lo;
    out.lowest_fail = hi;
    return out;
  };

  // Doubling: the first failure bounds the knee from above.
  for (double rate = bounds.start;;) {
    const std::optional<bool> passed = run(rate, "doubling");
    if (!passed) return finish();
    if (!*passed) {
      hi = rate;
      break;
    }
    lo = rate;
    if (rate >= bounds.max) {
      out.note = absl::StrCat("every trial passed up to max ", FormatNumber(bounds.max),
                              "/s: the knee is at or above it");
      return finish();
    }
    rate = std::min(2 * rate, bounds.max);
  }
  // Halving: `start` failed, so look downwards for a rate that passes.
  if (!lo) {
    for (double rate = *hi / 2; rate >= bounds.min_rate; rate /= 2) {
      const std::optional<bool> passed = run(rate, "halving");
      if (!passed) return finish();
      if (*passed) {
        lo = rate;
        break;
      }
      hi = rate;
    }
    if (!lo) {
      out.note = absl::StrCat("every trial failed, down to ", FormatNumber(*hi),
                              "/s: no rate this low is sustained");
      return finish();
    }
  }
  // Bisection between the highest pass and the lowest failure.
  while (*hi - *lo > StopWidth(bounds, *hi)) {
    const double rate = Midpoint(*lo, *hi);
    const std::optional<bool> passed = run(rate, "bisect");
    if (!passed) return finish();
    (*passed ? lo : hi) = rate;
  }
  return finish();
}

}  // namespace synq::controller::search
