// Proves the NFQUEUE delayer's schedule: delay is exact, jitter never reorders packets, the
// rate paces by serialization time, and loss drops the asked share.
#include <chrono>
#include <cstdint>

#include "agent/shaping/nfqueue_delayer.h"
#include "gtest/gtest.h"

namespace synq::agent {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

const DelayerClock::time_point kT0 = DelayerClock::time_point(std::chrono::seconds(1000));

TEST(ReleaseSchedule, DelayOnlyHoldsEachPacketExactlyTheDelay) {
  ReleaseSchedule s({milliseconds(200), {}, 0, 0}, 1);
  for (int i = 0; i < 100; ++i) {
    const auto arrival = kT0 + microseconds(i * 137);
    auto release = s.Admit(arrival, 60);
    ASSERT_TRUE(release.has_value());
    EXPECT_EQ(*release, arrival + milliseconds(200));
  }
}

TEST(ReleaseSchedule, JitterStaysInBoundsAndNeverReorders) {
  const DelayerParams p{milliseconds(100), milliseconds(50), 0, 0};
  ReleaseSchedule s(p, 7);
  DelayerClock::time_point previous{};
  int delayed_beyond_base = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto arrival = kT0 + microseconds(i * 10);
    auto release = s.Admit(arrival, 100);
    ASSERT_TRUE(release.has_value());
    EXPECT_GE(*release, previous) << "packet " << i << " would overtake its predecessor";
    EXPECT_GE(*release, arrival + p.delay - p.jitter);
    EXPECT_LE(*release, std::max(arrival + p.delay + p.jitter, previous));
    if (*release > arrival + p.delay) ++delayed_beyond_base;
    previous = *release;
  }
  EXPECT_GT(delayed_beyond_base, 0);
}

TEST(ReleaseSchedule, SparsePacketsGetUnbiasedJitter) {
  const DelayerParams p{milliseconds(100), milliseconds(20), 0, 0};
  ReleaseSchedule s(p, 11);
  nanoseconds total{0};
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const auto arrival = kT0 + milliseconds(i * 100);  // further apart than 2 * jitter
    auto release = s.Admit(arrival, 100);
    ASSERT_TRUE(release.has_value());
    total += *release - arrival;
  }
  using Ms = std::chrono::duration<double, std::milli>;
  EXPECT_NEAR(Ms(total / n).count(), 100.0, 1.0);
}

TEST(ReleaseSchedule, RatePacesBackToBackPacketsBySerializationTime) {
  // 1 Mbit/s: a 1250-byte packet takes 10 ms on the wire.
  ReleaseSchedule s({milliseconds(50), {}, 0, 1'000'000}, 1);
  for (int k = 1; k <= 10; ++k) {
    auto release = s.Admit(kT0, 1250);
    ASSERT_TRUE(release.has_value());
    EXPECT_EQ(*release, kT0 + milliseconds(10 * k) + milliseconds(50));
  }
  // After the link has been idle, a packet waits only for its own serialization.
  auto later = s.Admit(kT0 + std::chrono::seconds(5), 125);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(*later, kT0 + std::chrono::seconds(5) + milliseconds(1) + milliseconds(50));
}

TEST(ReleaseSchedule, LossDropsTheAskedShare) {
  ReleaseSchedule none({{}, {}, 0, 0}, 3), all({{}, {}, 100, 0}, 3), quarter({{}, {}, 25, 0}, 3);
  int dropped = 0;
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(none.Admit(kT0, 60).has_value());
    EXPECT_FALSE(all.Admit(kT0, 60).has_value());
    if (!quarter.Admit(kT0, 60).has_value()) ++dropped;
  }
  EXPECT_NEAR(static_cast<double>(dropped) / n, 0.25, 0.01);
}

}  // namespace
}  // namespace synq::agent
