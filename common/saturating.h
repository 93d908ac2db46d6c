// Duration arithmetic that clamps at the ends of int64 nanoseconds instead of overflowing: a
// lease or a budget computed from large figures becomes "very long", never negative or UB.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>

namespace synq::common {

// `ns` (a count of nanoseconds, possibly huge or NaN) as a duration, clamped to the range of
// std::chrono::nanoseconds; NaN is the maximum (an unknown wait is a long one).
inline std::chrono::nanoseconds SaturatingNanos(double ns) {
  using std::chrono::nanoseconds;
  // 2^63 is exactly representable; anything at or past it does not fit.
  constexpr double kLimit = 9223372036854775808.0;
  if (std::isnan(ns) || ns >= kLimit) return nanoseconds::max();
  if (ns <= -kLimit) return nanoseconds::min();
  return nanoseconds(static_cast<int64_t>(ns));
}

// a + b, clamped.
inline std::chrono::nanoseconds SaturatingAdd(std::chrono::nanoseconds a,
                                              std::chrono::nanoseconds b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a.count(), b.count(), &sum)) {
    return b.count() > 0 ? std::chrono::nanoseconds::max() : std::chrono::nanoseconds::min();
  }
  return std::chrono::nanoseconds(sum);
}

// d * n, clamped.
inline std::chrono::nanoseconds SaturatingMul(std::chrono::nanoseconds d, int64_t n) {
  int64_t product = 0;
  if (__builtin_mul_overflow(d.count(), n, &product)) {
    return (d.count() < 0) != (n < 0) ? std::chrono::nanoseconds::min()
                                      : std::chrono::nanoseconds::max();
  }
  return std::chrono::nanoseconds(product);
}

// seconds + nanos (a google.protobuf.Duration's fields), clamped.
inline std::chrono::nanoseconds SaturatingFromParts(int64_t seconds, int64_t nanos) {
  return SaturatingAdd(SaturatingMul(std::chrono::nanoseconds(1'000'000'000), seconds),
                       std::chrono::nanoseconds(nanos));
}

}  // namespace synq::common
