// Pure timing cores of a listener: the absolute pacing schedule (the n-th accept is due at
// start + n * period) and the pause windows (offsets from the run's flood start). No I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"

namespace synq::agent {

// One window in which a listener accepts nothing: [at, at + length) after the flood start.
struct PauseWindow {
  std::chrono::nanoseconds at{0};
  std::chrono::nanoseconds length{0};
};

// The accept ticks of a paced listener on an absolute schedule: tick n (n = 1, 2, ...) is due
// at offset DueAt(n) from the schedule's start, so late wake-ups never shift later ticks (no
// drift). A period that is not a whole number of nanoseconds (a rate) is rounded per tick, never
// accumulated.
class PaceSchedule {
 public:
  // accepts per second, > 0 and at most 1e9.
  static absl::StatusOr<PaceSchedule> FromRate(double per_second);
  // one accept per interval, > 0.
  static absl::StatusOr<PaceSchedule> FromInterval(std::chrono::nanoseconds interval);

  // Offset of tick n from the start: ceil(n * 1e9 / rate) ns (n * interval for an interval).
  std::chrono::nanoseconds DueAt(uint64_t n) const;
  // How many ticks are due by `elapsed`: the largest n with DueAt(n) <= elapsed (0 before the
  // first tick).
  uint64_t DueBy(std::chrono::nanoseconds elapsed) const;

 private:
  PaceSchedule(double per_second, std::chrono::nanoseconds interval)
      : per_second_(per_second), interval_(interval) {}
  double per_second_ = 0;                 // set for a rate
  std::chrono::nanoseconds interval_{0};  // set for an interval
};

// A listener's pause windows, merged where they overlap and sorted.
class PauseWindows {
 public:
  PauseWindows() = default;
  // Each window needs at >= 0 and length > 0; the error names the window's index.
  static absl::StatusOr<PauseWindows> Make(const std::vector<PauseWindow>& windows);

  bool empty() const { return windows_.empty(); }
  // When `offset` (from the flood start) falls in a window: that window's end; else nullopt.
  std::optional<std::chrono::nanoseconds> PausedUntil(std::chrono::nanoseconds offset) const;
  // The start of the first window that begins after `offset`; nullopt when none does.
  std::optional<std::chrono::nanoseconds> NextPauseAfter(std::chrono::nanoseconds offset) const;
  // Total paused time within [0, offset).
  std::chrono::nanoseconds PausedBefore(std::chrono::nanoseconds offset) const;

 private:
  struct Span {
    std::chrono::nanoseconds begin, end;
  };
  std::vector<Span> windows_;
};

}  // namespace synq::agent
