// Proves the log-linear histogram's contract: exact small values, bounded relative error at large
// ones, quantiles as bucket upper edges capped at max, lossless merge and serialization, and
// enough resolution to separate the 1 s / 2 s / 3 s SYN-retransmit bands from 50 us loopback.
#include "common/histogram.h"

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace synq::common {
namespace {

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  const uint64_t exact_limit = uint64_t{1} << Histogram::kDefaultSubBucketBits;
  for (uint64_t v = 0; v < exact_limit; ++v) {
    const uint32_t b = h.BucketOf(v);
    EXPECT_EQ(h.BucketLower(b), v);
    EXPECT_EQ(h.BucketUpper(b), v);
  }
}

TEST(Histogram, SingleValueQuantileIsThatValue) {
  Histogram h;
  h.Record(7);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.max(), 7u);
  EXPECT_EQ(h.Quantile(0.0), 7u);
  EXPECT_EQ(h.Quantile(0.5), 7u);
  EXPECT_EQ(h.Quantile(1.0), 7u);
}

TEST(Histogram, BucketsContainTheirValuesWithBoundedRelativeError) {
  for (uint32_t bits : {0u, 3u, 5u, 8u}) {
    Histogram h(bits);
    const double bound = 1.0 / static_cast<double>(uint64_t{1} << bits);
    std::mt19937_64 rng(42);
    std::vector<uint64_t> values = {
        0,           1,    31, 32,      33,        63,        64,
        65,          1000, 50, 999'999, 1'000'000, 3'000'000, uint64_t{1} << 40,
        ~uint64_t{0}};
    for (int i = 0; i < 2000; ++i) values.push_back(rng() >> (rng() % 64));
    for (uint64_t v : values) {
      const uint32_t b = h.BucketOf(v);
      const uint64_t lo = h.BucketLower(b);
      const uint64_t hi = h.BucketUpper(b);
      ASSERT_LE(lo, v) << "bits=" << bits << " v=" << v;
      ASSERT_GE(hi, v) << "bits=" << bits << " v=" << v;
      if (lo > 0) {
        EXPECT_LE(static_cast<double>(hi - lo) / static_cast<double>(lo), bound)
            << "bits=" << bits << " v=" << v;
      }
    }
  }
}

TEST(Histogram, BucketsTileTheValueRange) {
  Histogram h;
  // Consecutive indexes are adjacent, non-overlapping ranges.
  for (uint32_t b = 0; b + 1 < 40 * 32; ++b) {
    ASSERT_EQ(h.BucketUpper(b) + 1, h.BucketLower(b + 1)) << "bucket " << b;
  }
}

TEST(Histogram, QuantilesOfUniformDistribution) {
  Histogram h;
  for (uint64_t v = 1; v <= 10'000; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 10'000u);
  for (double q : {0.1, 0.5, 0.9, 0.99}) {
    const double exact = q * 10'000;
    const double got = static_cast<double>(h.Quantile(q));
    EXPECT_GE(got, exact) << q;  // upper edge of the bucket: never below the true value
    EXPECT_LE(got, exact * (1 + 1.0 / 32) + 1) << q;
  }
  EXPECT_EQ(h.Quantile(1.0), 10'000u);  // capped at max
  EXPECT_EQ(h.Quantile(0.0), 1u);
}

TEST(Histogram, QuantilesOfBimodalDistribution) {
  Histogram h;
  for (int i = 0; i < 90; ++i) h.Record(50);         // loopback connects
  for (int i = 0; i < 10; ++i) h.Record(1'003'000);  // one SYN retransmit
  EXPECT_EQ(h.Quantile(0.5), 50u);
  EXPECT_EQ(h.Quantile(0.9), 50u);
  EXPECT_GE(h.Quantile(0.91), 1'003'000u);
  EXPECT_EQ(h.Quantile(1.0), 1'003'000u);
}

TEST(Histogram, QuantileCappedAtMax) {
  Histogram h;
  h.Record(1'000'001);  // bucket upper edge is well above
  EXPECT_LT(h.Quantile(1.0), h.BucketUpper(h.BucketOf(1'000'001)) + 1);
  EXPECT_EQ(h.Quantile(1.0), 1'000'001u);
}

TEST(Histogram, EmptyQuantileIsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Quantile(0.0), 0u);
  EXPECT_EQ(h.Quantile(0.5), 0u);
  EXPECT_EQ(h.Quantile(1.0), 0u);
}

TEST(Histogram, MergeEqualsRecordingEverythingIntoOne) {
  Histogram a, b, all;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 5000; ++i) {
    const uint64_t v = rng() % 5'000'000;
    (i % 3 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  ASSERT_TRUE(a.Merge(b));
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_EQ(a.buckets(), all.buckets());
  for (double q : {0.0, 0.25, 0.5, 0.99, 1.0}) EXPECT_EQ(a.Quantile(q), all.Quantile(q));
}

TEST(Histogram, MergeOfMismatchedSubBucketBitsRefused) {
  Histogram a(5), b(4);
  a.Record(100);
  b.Record(200);
  EXPECT_FALSE(a.Merge(b));
  EXPECT_EQ(a.count(), 1u);
  EXPECT_EQ(a.max(), 100u);
}

TEST(Histogram, FromBucketsRoundTrip) {
  Histogram h(6);
  for (uint64_t v : {3u, 50u, 51u, 900u, 1'000'000u, 2'000'000u, 2'000'000u}) h.Record(v);
  const Histogram copy = Histogram::FromBuckets(h.sub_bucket_bits(), h.buckets(), h.max());
  EXPECT_EQ(copy.sub_bucket_bits(), 6u);
  EXPECT_EQ(copy.count(), h.count());
  EXPECT_EQ(copy.max(), h.max());
  EXPECT_EQ(copy.buckets(), h.buckets());
  for (double q : {0.0, 0.3, 0.5, 0.9, 1.0}) EXPECT_EQ(copy.Quantile(q), h.Quantile(q));
}

TEST(Histogram, SynRetransmitBandsLandInDistinctBuckets) {
  Histogram h;
  // Each band: a connect answered after 0, 1 or 2 SYN retransmits (1 s, 3 s with doubling, or a
  // flat 1 s / 2 s / 3 s schedule), with a few ms of jitter.
  std::set<uint32_t> bands[3];
  for (int band = 0; band < 3; ++band) {
    for (uint64_t jitter : {0u, 500u, 3'000u, 8'000u}) {
      bands[band].insert(h.BucketOf((band + 1) * 1'000'000 + jitter));
    }
  }
  for (uint32_t b1 : bands[0]) {
    for (uint32_t b2 : bands[1]) EXPECT_LT(b1, b2);
  }
  for (uint32_t b2 : bands[1]) {
    for (uint32_t b3 : bands[2]) EXPECT_LT(b2, b3);
  }
  // And loopback latencies around 50 us are resolved to a few us.
  EXPECT_NE(h.BucketOf(40), h.BucketOf(50));
  EXPECT_NE(h.BucketOf(50), h.BucketOf(60));
  EXPECT_LE(h.BucketUpper(h.BucketOf(50)) - h.BucketLower(h.BucketOf(50)), 1u);
}

TEST(Histogram, OversizedSubBucketBitsAreClamped) {
  Histogram h(63);
  EXPECT_EQ(h.sub_bucket_bits(), Histogram::kMaxSubBucketBits);
  h.Record(~uint64_t{0});
  EXPECT_EQ(h.Quantile(1.0), ~uint64_t{0});
}

}  // namespace
}  // namespace synq::common
