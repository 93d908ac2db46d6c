#include "agent/listener/accept_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace synq::agent {

using std::chrono::nanoseconds;

absl::StatusOr<PaceSchedule> PaceSchedule::FromRate(double per_second) {
  // 1e9/s is one accept per nanosecond, the schedule's resolution.
  if (!(per_second > 0) || per_second > 1e9 || !std::isfinite(per_second)) {
    return absl::InvalidArgumentError(
        absl::StrCat("accept_rate must be > 0 and at most 1e9 per second, got ", per_second));
  }
  return PaceSchedule(per_second, nanoseconds(0));
}

absl::StatusOr<PaceSchedule> PaceSchedule::FromInterval(nanoseconds interval) {
  if (interval.count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("accept_interval must be > 0, got ", interval.count(), " ns"));
  }
  return PaceSchedule(0, interval);
}

nanoseconds PaceSchedule::DueAt(uint64_t n) const {
  if (interval_.count() > 0) return interval_ * static_cast<int64_t>(n);
  // long double keeps n * 1e9 exact far beyond any run length at any allowed rate.
  const long double ns = std::ceil(static_cast<long double>(n) * 1e9L / per_second_);
  return nanoseconds(static_cast<int64_t>(ns));
}

uint64_t PaceSchedule::DueBy(nanoseconds elapsed) const {
  if (elapsed.count() <= 0) return 0;
  if (interval_.count() > 0) return static_cast<uint64_t>(elapsed / interval_);
  // An estimate from the rate, then corrected against DueAt so the two always agree.
  auto n = static_cast<uint64_t>(
      std::floor(static_cast<long double>(elapsed.count()) * per_second_ / 1e9L));
  while (n > 0 && DueAt(n) > elapsed) --n;
  while (DueAt(n + 1) <= elapsed) ++n;
  return n;
}

absl::StatusOr<PauseWindows> PauseWindows::Make(const std::vector<PauseWindow>& windows) {
  PauseWindows out;
  for (size_t i = 0; i < windows.size(); ++i) {
    const PauseWindow& w = windows[i];
    if (w.at.count() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("pause ", i, ": at must be >= 0, got ", w.at.count(), " ns"));
    }
    if (w.length.count() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("pause ", i, ": length must be > 0, got ", w.length.count(), " ns"));
    }
    out.windows_.push_back({w.at, w.at + w.length});
  }
  std::sort(out.windows_.begin(), out.windows_.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  std::vector<Span> merged;
  for (const Span& s : out.windows_) {
    if (!merged.empty() && s.begin <= merged.back().end) {
      merged.back().end = std::max(merged.back().end, s.end);
    } else {
      merged.push_back(s);
    }
  }
  out.windows_ = std::move(merged);
  return out;
}

std::optional<nanoseconds> PauseWindows::PausedUntil(nanoseconds offset) const {
  for (const Span& s : windows_) {
    if (offset < s.begin) break;
    if (offset < s.end) return s.end;
  }
  return std::nullopt;
}

std::optional<nanoseconds> PauseWindows::NextPauseAfter(nanoseconds offset) const {
  for (const Span& s : windows_) {
    if (s.begin > offset) return s.begin;
  }
  return std::nullopt;
}

nanoseconds PauseWindows::PausedBefore(nanoseconds offset) const {
  nanoseconds total{0};
  for (const Span& s : windows_) {
    if (offset <= s.begin) break;
    total += std::min(offset, s.end) - s.begin;
  }
  return total;
}

}  // namespace synq::agent
