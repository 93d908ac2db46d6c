// The open-loop launch schedule of a flood: when attempt k is due under a constant rate, a linear
// ramp or steps. Pure functions over RateProfile (no clock, no I/O), so the maths has its own
// tests. The agent's engine launches by it; the controller reads the scheduled rate per second
// of a result from the same integral.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace synq::common {

// The open-loop launch schedule: a constant rate, a linear ramp, or steps (connects/s).
// rate 0 with kConstant = as fast as concurrency allows.
struct RateProfile {
  enum class Kind { kConstant, kRamp, kSteps };
  Kind kind = Kind::kConstant;
  double rate = 0;          // kConstant
  double from = 0, to = 0;  // kRamp
  std::chrono::nanoseconds over{0};
  std::vector<double> steps;  // kSteps
  std::chrono::nanoseconds each{0};
};

// Checks a profile: rates finite and >= 0; a ramp's `over` > 0; steps non-empty with `each` > 0.
// InvalidArgument naming `prefix` + the field ("rate", "ramp.from", "ramp.to", "ramp.over",
// "steps", "steps[2]", "steps.each") with the value found.
absl::Status ValidateRateProfile(const RateProfile& profile, absl::string_view prefix);

// The schedule of a valid profile. With N(t) the cumulative number of launches due by t (the
// integral of the rate from the flood's start), attempt k (k = 0, 1, ...) is due at the first
// instant t with N(t) >= k: attempt 0 at t = 0, attempt k of a constant rate r at k / r.
class RateSchedule {
 public:
  explicit RateSchedule(const RateProfile& profile);

  // Constant rate 0: launches are not scheduled but made as fast as concurrency allows.
  bool unpaced() const { return unpaced_; }

  // N(t): launches due by `seconds` after the start (a real number; 0 for t <= 0).
  double Cumulative(double seconds) const;

  // Seconds after the start at which attempt k is due; +infinity when the schedule never reaches
  // k (the rate ends at 0 first). 0 for every k when unpaced().
  double DueSeconds(uint64_t k) const;

  // DueSeconds as nanoseconds; nanoseconds::max() for "never" (and anything beyond ~292 years).
  std::chrono::nanoseconds Due(uint64_t k) const;

  // How many attempts are due strictly before `t`: the k with Due(k) < t. Saturates at
  // UINT64_MAX when unpaced() (every attempt is due at 0).
  uint64_t CountBefore(std::chrono::nanoseconds t) const;

 private:
  RateProfile::Kind kind_;
  bool unpaced_ = false;
  double rate_ = 0;
  double from_ = 0, to_ = 0, over_s_ = 0;
  double ramp_total_ = 0;  // N(over) of a ramp
  std::vector<double> steps_;
  double each_s_ = 0;
  std::vector<double> prefix_;  // prefix_[i] = N(i * each) for steps
};

}  // namespace synq::common
