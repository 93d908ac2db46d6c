#include "common/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace synq::common {

// Layout, with S = sub_bucket_bits: values below 2^S get one bucket each (index == value). A value
// v >= 2^S with highest set bit m falls in power-of-two band k = m - S + 1 (k >= 1), and within
// the band in sub-bucket (v >> (m - S)) - 2^S, so index = k * 2^S + sub. Band k's buckets are
// 2^(k-1) wide and start at 2^(S+k-1), which bounds the relative width by 2^-S.

Histogram::Histogram(uint32_t sub_bucket_bits)
    : sub_bucket_bits_(std::min(sub_bucket_bits, kMaxSubBucketBits)) {}

uint32_t Histogram::BucketOf(uint64_t value_us) const {
  const uint64_t sub_count = uint64_t{1} << sub_bucket_bits_;
  if (value_us < sub_count) return static_cast<uint32_t>(value_us);
  const uint32_t msb = 63 - static_cast<uint32_t>(std::countl_zero(value_us));
  const uint32_t shift = msb - sub_bucket_bits_;
  const uint64_t sub = (value_us >> shift) - sub_count;
  return static_cast<uint32_t>((uint64_t{shift} + 1) * sub_count + sub);
}

uint64_t Histogram::BucketLower(uint32_t index) const {
  const uint64_t sub_count = uint64_t{1} << sub_bucket_bits_;
  if (index < sub_count) return index;
  const uint64_t band = index >> sub_bucket_bits_;
  const uint64_t sub = index & (sub_count - 1);
  const uint64_t shift = band - 1;
  // Indexes past the band of 2^63 do not come from BucketOf; saturate instead of overflowing.
  if (shift + sub_bucket_bits_ > 63) return std::numeric_limits<uint64_t>::max();
  return (sub_count + sub) << shift;
}

uint64_t Histogram::BucketUpper(uint32_t index) const {
  const uint64_t sub_count = uint64_t{1} << sub_bucket_bits_;
  if (index < sub_count) return index;
  const uint64_t shift = (index >> sub_bucket_bits_) - 1;
  const uint64_t lower = BucketLower(index);
  if (lower == std::numeric_limits<uint64_t>::max()) return lower;
  return lower + ((uint64_t{1} << shift) - 1);
}

void Histogram::Record(uint64_t value_us) {
  ++buckets_[BucketOf(value_us)];
  ++count_;
  max_ = std::max(max_, value_us);
}

bool Histogram::Merge(const Histogram& other) {
  if (other.sub_bucket_bits_ != sub_bucket_bits_) return false;
  for (const auto& [index, n] : other.buckets_) buckets_[index] += n;
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  return true;
}

uint64_t Histogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  // NaN and q <= 0 ask for the smallest value; q >= 1 for the largest.
  if (!(q > 0)) q = 0;
  q = std::min(q, 1.0);
  const uint64_t rank = std::clamp<uint64_t>(
      static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))), 1, count_);
  uint64_t seen = 0;
  for (const auto& [index, n] : buckets_) {
    seen += n;
    if (seen >= rank) return std::min(BucketUpper(index), max_);
  }
  return max_;
}

Histogram Histogram::FromBuckets(uint32_t sub_bucket_bits,
                                 const std::map<uint32_t, uint64_t>& buckets, uint64_t max_us) {
  Histogram h(sub_bucket_bits);
  for (const auto& [index, n] : buckets) {
    if (n == 0) continue;
    h.buckets_[index] = n;
    h.count_ += n;
  }
  h.max_ = max_us;
  return h;
}

}  // namespace synq::common
