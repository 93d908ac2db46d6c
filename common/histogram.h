// Log-linear latency histogram in microseconds: mergeable, exact to 1/2^sub_bucket_bits.
#pragma once

#include <cstdint>
#include <map>

namespace synq::common {

// Values are bucketed by power of two (the "log" part) and, within each power, into
// 2^sub_bucket_bits equal sub-buckets (the "linear" part), so relative error is bounded by
// 2^-sub_bucket_bits at every scale: 50 us and 3 s are both resolved well enough to see the
// 1 s / 2 s / 3 s SYN-retransmit bands. Values below 2^sub_bucket_bits are exact.
class Histogram {
 public:
  static constexpr uint32_t kDefaultSubBucketBits = 5;
  // Larger values are clamped to this: 2^20 sub-buckets per power of two is already ~1 ppm.
  static constexpr uint32_t kMaxSubBucketBits = 20;

  explicit Histogram(uint32_t sub_bucket_bits = kDefaultSubBucketBits);

  void Record(uint64_t value_us);
  // Adds `other` into this one. Both must use the same sub_bucket_bits (checked): returns false
  // and leaves this one unchanged when they differ.
  bool Merge(const Histogram& other);

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint32_t sub_bucket_bits() const { return sub_bucket_bits_; }
  // Bucket index -> count, sparse. Used to serialize and to rebuild with FromBuckets.
  const std::map<uint32_t, uint64_t>& buckets() const { return buckets_; }

  // Value at quantile q in [0,1]: the upper edge of the bucket holding the q-th value, capped at
  // max(). 0 when empty.
  uint64_t Quantile(double q) const;

  // Bucket index of a value, and the inclusive [lower, upper] values of a bucket.
  uint32_t BucketOf(uint64_t value_us) const;
  uint64_t BucketLower(uint32_t index) const;
  uint64_t BucketUpper(uint32_t index) const;

  // Rebuilds a histogram from serialized parts; count() is the sum of the bucket counts and
  // buckets with a zero count are dropped.
  static Histogram FromBuckets(uint32_t sub_bucket_bits,
                               const std::map<uint32_t, uint64_t>& buckets, uint64_t max_us);

 private:
  uint32_t sub_bucket_bits_;
  std::map<uint32_t, uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace synq::common
