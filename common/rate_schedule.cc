#include "common/rate_schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace synq::common {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

absl::Status CheckRate(double rate, absl::string_view prefix, absl::string_view field) {
  if (std::isfinite(rate) && rate >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(prefix, field, " must be a finite number >= 0 ", "(connects/s), got ", rate));
}

double Seconds(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) * 1e-9; }

}  // namespace

absl::Status ValidateRateProfile(const RateProfile& profile, absl::string_view prefix) {
  switch (profile.kind) {
    case RateProfile::Kind::kConstant:
      return CheckRate(profile.rate, prefix, "rate");
    case RateProfile::Kind::kRamp:
      if (absl::Status s = CheckRate(profile.from, prefix, "ramp.from"); !s.ok()) return s;
      if (absl::Status s = CheckRate(profile.to, prefix, "ramp.to"); !s.ok()) return s;
      if (profile.over <= std::chrono::nanoseconds{0}) {
        return absl::InvalidArgumentError(
            absl::StrCat(prefix, "ramp.over must be positive, got ", profile.over.count(), " ns"));
      }
      if (profile.from == 0 && profile.to == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(prefix, "ramp: from and to are both 0, so nothing would ever launch"));
      }
      return absl::OkStatus();
    case RateProfile::Kind::kSteps: {
      if (profile.steps.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(prefix, "steps must list at least one rate"));
      }
      bool any = false;
      for (size_t i = 0; i < profile.steps.size(); ++i) {
        if (absl::Status s = CheckRate(profile.steps[i], prefix, absl::StrCat("steps[", i, "]"));
            !s.ok()) {
          return s;
        }
        any = any || profile.steps[i] > 0;
      }
      if (!any) {
        return absl::InvalidArgumentError(
            absl::StrCat(prefix, "steps are all 0, so nothing would ever launch"));
      }
      if (profile.each <= std::chrono::nanoseconds{0}) {
        return absl::InvalidArgumentError(
            absl::StrCat(prefix, "steps.each must be positive, got ", profile.each.count(), " ns"));
      }
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(prefix, "rate profile of unknown kind"));
}

RateSchedule::RateSchedule(const RateProfile& profile) : kind_(profile.kind) {
  switch (kind_) {
    case RateProfile::Kind::kConstant:
      rate_ = profile.rate;
      unpaced_ = !(rate_ > 0);
      break;
    case RateProfile::Kind::kRamp:
      from_ = profile.from;
      to_ = profile.to;
      over_s_ = Seconds(profile.over);
      ramp_total_ = (from_ + to_) / 2 * over_s_;  // area of the trapezoid
      break;
    case RateProfile::Kind::kSteps:
      steps_ = profile.steps;
      each_s_ = Seconds(profile.each);
      prefix_.reserve(steps_.size() + 1);
      prefix_.push_back(0);
      for (double s : steps_) prefix_.push_back(prefix_.back() + s * each_s_);
      break;
  }
}

double RateSchedule::Cumulative(double t) const {
  if (t <= 0) return 0;
  switch (kind_) {
    case RateProfile::Kind::kConstant:
      return unpaced_ ? kInfinity : rate_ * t;
    case RateProfile::Kind::kRamp:
      if (t >= over_s_) return ramp_total_ + to_ * (t - over_s_);
      return from_ * t + (to_ - from_) * t * t / (2 * over_s_);
    case RateProfile::Kind::kSteps: {
      const size_t n = steps_.size();
      const size_t i = std::min(static_cast<size_t>(t / each_s_), n);
      if (i >= n) return prefix_[n] + steps_[n - 1] * (t - static_cast<double>(n) * each_s_);
      return prefix_[i] + steps_[i] * (t - static_cast<double>(i) * each_s_);
    }
  }
  return 0;
}

double RateSchedule::DueSeconds(uint64_t k) const {
  if (k == 0 || unpaced_) return 0;
  const double kd = static_cast<double>(k);
  switch (kind_) {
    case RateProfile::Kind::kConstant:
      return kd / rate_;
    case RateProfile::Kind::kRamp: {
      if (kd > ramp_total_) {
        if (to_ <= 0) return kInfinity;
        return over_s_ + (kd - ramp_total_) / to_;
      }
      // from * t + a * t^2 = k with a = (to - from) / (2 over). The root in the form
      // 2k / (b + sqrt(b^2 + 4ak)) stays exact when a is ~0 and never divides by zero (k > 0,
      // and b = 0 forces a > 0). Within the ramp b^2 + 4ak >= to^2 >= 0, even for a ramp down.
      const double a = (to_ - from_) / (2 * over_s_);
      const double disc = std::max(0.0, from_ * from_ + 4 * a * kd);
      return std::min(over_s_, 2 * kd / (from_ + std::sqrt(disc)));
    }
    case RateProfile::Kind::kSteps: {
      const size_t n = steps_.size();
      if (kd > prefix_[n]) {
        if (steps_[n - 1] <= 0) return kInfinity;
        return static_cast<double>(n) * each_s_ + (kd - prefix_[n]) / steps_[n - 1];
      }
      // The first step by whose end N reaches k; a step of rate 0 is never chosen unless N
      // reached k exactly at its start, and then the answer is that start (k - prefix = 0).
      const auto it = std::lower_bound(prefix_.begin() + 1, prefix_.end(), kd);
      const size_t i = static_cast<size_t>(it - prefix_.begin()) - 1;
      const double into = kd - prefix_[i];
      const double start = static_cast<double>(i) * each_s_;
      return into <= 0 ? start : start + std::min(each_s_, into / steps_[i]);
    }
  }
  return 0;
}

std::chrono::nanoseconds RateSchedule::Due(uint64_t k) const {
  const double s = DueSeconds(k);
  // ~292 years fit in int64 nanoseconds; anything that far is "never".
  if (!(s < 9e9)) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(s * 1e9)));
}

uint64_t RateSchedule::CountBefore(std::chrono::nanoseconds t) const {
  if (t <= std::chrono::nanoseconds{0}) return 0;
  if (unpaced_) return std::numeric_limits<uint64_t>::max();
  const double n = Cumulative(Seconds(t));
  if (!(n < 1e18)) return std::numeric_limits<uint64_t>::max();
  // N(t) is the answer up to rounding and flat stretches (a rate of 0): settle it on Due itself.
  uint64_t count = static_cast<uint64_t>(std::floor(n));
  while (Due(count) < t) ++count;
  while (count > 0 && Due(count - 1) >= t) --count;
  return count;
}

}  // namespace synq::common
