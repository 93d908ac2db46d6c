#include "controller/scenario/rate_profile.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/rate_schedule.h"
#include "common/saturating.h"

namespace synq::controller {
namespace {

using std::chrono::nanoseconds;

double Seconds(nanoseconds d) { return static_cast<double>(d.count()) / 1e9; }

// "1000", "2.5": shortest form that reads back.
std::string Num(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrCat(v);
}

// "30s", "250ms", "1.5s".
std::string Dur(nanoseconds d) {
  if (d.count() % 1'000'000'000 == 0) return absl::StrCat(d.count() / 1'000'000'000, "s");
  if (d.count() % 1'000'000 == 0) return absl::StrCat(d.count() / 1'000'000, "ms");
  return absl::StrCat(Num(Seconds(d)), "s");
}

// The schedule the agent's engine launches by (common/rate_schedule.h), from the scenario's
// fields: the controller's per-second rates come from the same integral.
common::RateProfile ProfileOf(const FloodDef& f) {
  common::RateProfile p;
  switch (f.rate_kind) {
    case RateKind::kConstant:
      p.kind = common::RateProfile::Kind::kConstant;
      p.rate = f.rate;
      break;
    case RateKind::kRamp:
      p.kind = common::RateProfile::Kind::kRamp;
      p.from = f.ramp_from;
      p.to = f.ramp_to;
      p.over = f.ramp_over;
      break;
    case RateKind::kSteps:
      p.kind = common::RateProfile::Kind::kSteps;
      p.steps = f.steps;
      p.each = f.steps_each;
      break;
  }
  return p;
}

}  // namespace

double ScheduledRate(const FloodDef& f, nanoseconds t) {
  switch (f.rate_kind) {
    case RateKind::kConstant:
      return f.rate;
    case RateKind::kRamp: {
      if (f.ramp_over.count() <= 0 || t >= f.ramp_over) return f.ramp_to;
      const double x = std::max(0.0, Seconds(t) / Seconds(f.ramp_over));
      return f.ramp_from + (f.ramp_to - f.ramp_from) * x;
    }
    case RateKind::kSteps: {
      if (f.steps.empty()) return 0;
      if (f.steps_each.count() <= 0) return f.steps.back();
      const int64_t i = std::max<int64_t>(0, t.count() / f.steps_each.count());
      return f.steps[std::min<size_t>(static_cast<size_t>(i), f.steps.size() - 1)];
    }
  }
  return 0;
}

double ScheduledLaunches(const FloodDef& f, nanoseconds from, nanoseconds to) {
  if (to <= from) return 0;
  const common::RateProfile profile = ProfileOf(f);
  // No schedule: an unpaced flood (constant rate 0), or a profile the checks refuse.
  if (profile.kind == common::RateProfile::Kind::kConstant && !(profile.rate > 0)) return 0;
  if (!common::ValidateRateProfile(profile, "").ok()) return 0;
  const common::RateSchedule schedule(profile);
  return schedule.Cumulative(Seconds(to)) - schedule.Cumulative(Seconds(from));
}

double ScheduledRateInSecond(const FloodDef& f, uint32_t second) {
  const nanoseconds begin = std::chrono::seconds(second);
  nanoseconds end = begin + std::chrono::seconds(1);
  if (f.duration.count() > 0) end = std::min(end, f.duration);
  if (end <= begin) return 0;
  return ScheduledLaunches(f, begin, end) / Seconds(end - begin);
}

nanoseconds ProfileLength(const FloodDef& f) {
  switch (f.rate_kind) {
    case RateKind::kConstant:
      return nanoseconds(0);
    case RateKind::kRamp:
      return f.ramp_over;
    case RateKind::kSteps:
      return f.steps_each * static_cast<int64_t>(f.steps.size());
  }
  return nanoseconds(0);
}

std::string DescribeRateProfile(const FloodDef& f) {
  switch (f.rate_kind) {
    case RateKind::kConstant:
      return f.rate > 0 ? absl::StrCat("constant ", Num(f.rate), "/s") : "as fast as possible";
    case RateKind::kRamp:
      return absl::StrCat("ramp ", Num(f.ramp_from), "/s to ", Num(f.ramp_to), "/s over ",
                          Dur(f.ramp_over));
    case RateKind::kSteps:
      return absl::StrCat(
          "steps ",
          absl::StrJoin(f.steps, ", ",
                        [](std::string* out, double r) { absl::StrAppend(out, Num(r), "/s"); }),
          " each ", Dur(f.steps_each));
  }
  return "";
}

const char* CloseModeName(CloseMode mode) {
  switch (mode) {
    case CloseMode::kKeep:
      return "keep";
    case CloseMode::kRst:
      return "rst";
    case CloseMode::kFin:
      return "fin";
  }
  return "keep";
}

}  // namespace synq::controller

namespace synq::controller {

std::chrono::nanoseconds LaunchWindow(const FloodDef& f) {
  using std::chrono::nanoseconds;
  if (f.duration.count() > 0) return f.duration;
  if (f.connections <= 0) return nanoseconds(0);
  if (f.rate_kind == RateKind::kConstant) {
    if (f.rate <= 0) return nanoseconds(0);
    return common::SaturatingNanos(1e9 * static_cast<double>(f.connections) / f.rate);
  }
  // The first instant by which the schedule holds `connections` launches (bisection: the
  // integral only grows).
  const double want = static_cast<double>(f.connections);
  nanoseconds lo{0};
  nanoseconds hi = std::chrono::hours(24);
  if (ScheduledLaunches(f, lo, hi) < want) return hi;
  while (hi - lo > std::chrono::milliseconds(1)) {
    const nanoseconds mid = lo + (hi - lo) / 2;
    (ScheduledLaunches(f, nanoseconds(0), mid) >= want ? hi : lo) = mid;
  }
  return hi;
}

}  // namespace synq::controller
