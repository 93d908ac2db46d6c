// The knee search's algorithm, apart from any I/O: doubling from `start` until a trial fails (or
// `max` passes), halving instead when `start` itself fails, then bisection between the highest
// passing and the lowest failing rate until they are `precision` apart. Each trial is a callback,
// so unit tests drive it with a deterministic pass/fail function.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace synq::controller::search {

struct KneeBounds {
  double start = 500;  // connects/s of the first trial
  double max = 100000;
  double precision = 50;  // connects/s, or a percentage of hi with `precision_is_percent`
  bool precision_is_percent = false;
  // Halving stops below this rate (a trial needs at least one connection: 1 / trial seconds).
  double min_rate = 1;
  int max_trials = 64;  // a guard; the bounds above end a search long before it
};

enum class TrialVerdict { kPass, kFail, kAbort };  // kAbort: the trial could not run

struct KneeStep {
  double rate = 0;
  std::string phase;  // "doubling", "halving" or "bisect"
  TrialVerdict verdict = TrialVerdict::kFail;
};

struct KneeOutcome {
  std::optional<double> knee;         // the highest passing rate; absent when none passed
  std::optional<double> lowest_fail;  // the lowest failing rate; absent when none failed
  std::vector<KneeStep> steps;        // every trial, in order
  std::string note;                   // why the search ended other than by precision
};

// The bisection's stopping width for an interval whose upper end is `hi`.
double StopWidth(const KneeBounds& bounds, double hi);

// The next rate the bisection tries between `lo` and `hi`: the midpoint, rounded to a whole
// connect per second while the interval is at least 2 wide (rates people read and type).
double Midpoint(double lo, double hi);

// Runs the search. `trial(rate, phase)` runs one trial and judges it; kAbort ends the search
// (the knee so far stays, with a note).
KneeOutcome SearchKnee(
    const KneeBounds& bounds,
    const std::function<TrialVerdict(double rate, const std::string& phase)>& trial);

}  // namespace synq::controller::search
