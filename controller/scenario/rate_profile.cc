#include "controller/scenario/rate_profile.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

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

// Integral of the ramp's rate over [0, t] (t in seconds).
double RampIntegral(const FloodDef& f, double t) {
  const double over = Seconds(f.ramp_over);
  if (t <= 0) return 0;
  if (over <= 0) return f.ramp_to * t;
  const double in_ramp = std::min(t, over);
  const double slope = (f.ramp_to - f.ramp_from) / over;
  double sum = f.ramp_from * in_ramp + 0.5 * slope * in_ramp * in_ramp;
  if (t > over) sum += f.ramp_to * (t - over);
  return sum;
}

double StepsIntegral(const FloodDef& f, double t) {
  if (t <= 0 || f.steps.empty()) return 0;
  const double each = Seconds(f.steps_each);
  if (each <= 0) return f.steps.back() * t;
  double sum = 0;
  for (size_t i = 0; i < f.steps.size(); ++i) {
    const double begin = each * static_cast<double>(i);
    if (t <= begin) return sum;
    const double end = i + 1 == f.steps.size() ? t : std::min(t, begin + each);
    sum += f.steps[i] * (end - begin);
  }
  return sum;
}

double Integral(const FloodDef& f, double t) {
  switch (f.rate_kind) {
    case RateKind::kConstant:
      return f.rate * std::max(0.0, t);
    case RateKind::kRamp:
      return RampIntegral(f, t);
    case RateKind::kSteps:
      return StepsIntegral(f, t);
  }
  return 0;
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
  return Integral(f, Seconds(to)) - Integral(f, Seconds(from));
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
    return nanoseconds(static_cast<int64_t>(1e9 * static_cast<double>(f.connections) / f.rate));
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
