// Proves the pacing maths (the n-th accept is due at start + n/rate, exactly, without drift;
// DueBy and DueAt agree) and the pause windows (validation, merging, containment, next start,
// paused time).
#include <gtest/gtest.h>

#include "agent/listener/accept_schedule.h"

namespace synq::agent {
namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

TEST(PaceSchedule, RateTicksAreAtNOverRateWithoutDrift) {
  auto s = PaceSchedule::FromRate(3);  // 333,333,333.33 ns: rounding must not accumulate
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->DueAt(1), nanoseconds(333'333'334));
  EXPECT_EQ(s->DueAt(3), 1s);
  EXPECT_EQ(s->DueAt(3'000'000), 1'000'000s);  // ~11.6 days of ticks, still exact
  EXPECT_EQ(s->DueBy(0ns), 0u);
  EXPECT_EQ(s->DueBy(333'333'333ns), 0u);
  EXPECT_EQ(s->DueBy(333'333'334ns), 1u);
  EXPECT_EQ(s->DueBy(1s), 3u);
  EXPECT_EQ(s->DueBy(1s - 1ns), 2u);
}

TEST(PaceSchedule, DueByIsTheInverseOfDueAt) {
  for (double rate : {1.0, 7.0, 40.0, 333.3, 50'000.0, 123'456.7}) {
    auto s = PaceSchedule::FromRate(rate);
    ASSERT_TRUE(s.ok());
    for (uint64_t n : {1u, 2u, 10u, 999u, 123'457u}) {
      EXPECT_EQ(s->DueBy(s->DueAt(n)), n) << rate << " " << n;
      EXPECT_EQ(s->DueBy(s->DueAt(n) - 1ns), n - 1) << rate << " " << n;
    }
  }
}

TEST(PaceSchedule, IntervalTicksAreMultiples) {
  auto s = PaceSchedule::FromInterval(250ms);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->DueAt(4), 1s);
  EXPECT_EQ(s->DueBy(999ms), 3u);
  EXPECT_EQ(s->DueBy(1s), 4u);
}

TEST(PaceSchedule, RejectsBadRatesAndIntervalsNamingTheField) {
  for (double bad : {0.0, -1.0, 2e9}) {
    auto s = PaceSchedule::FromRate(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.status().message().find("accept_rate"), std::string::npos);
  }
  auto s = PaceSchedule::FromInterval(0ns);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("accept_interval"), std::string::npos);
}

TEST(PauseWindows, ContainmentIsHalfOpen) {
  auto w = PauseWindows::Make({{2s, 3s}});
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(w->PausedUntil(2s - 1ns).has_value());
  EXPECT_EQ(w->PausedUntil(2s), 5s);
  EXPECT_EQ(w->PausedUntil(5s - 1ns), 5s);
  EXPECT_FALSE(w->PausedUntil(5s).has_value());
  EXPECT_EQ(w->NextPauseAfter(0s), 2s);
  EXPECT_FALSE(w->NextPauseAfter(2s).has_value());
}

TEST(PauseWindows, OverlapsMergeAndOrderDoesNotMatter) {
  auto w = PauseWindows::Make({{10s, 1s}, {1s, 2s}, {2s, 2s}});  // [1,4) and [10,11)
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->PausedUntil(1s), 4s);
  EXPECT_EQ(w->PausedUntil(3500ms), 4s);
  EXPECT_EQ(w->NextPauseAfter(4s), 10s);
  EXPECT_EQ(w->PausedBefore(2s), 1s);
  EXPECT_EQ(w->PausedBefore(20s), 4s);
  EXPECT_EQ(w->PausedBefore(10500ms), 3500ms);
}

TEST(PauseWindows, RejectsNegativeStartsAndEmptyWindowsNamingTheIndex) {
  auto negative = PauseWindows::Make({{1s, 1s}, {-1s, 1s}});
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("pause 1"), std::string::npos);
  auto empty = PauseWindows::Make({{1s, 0s}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("length"), std::string::npos);
}

}  // namespace
}  // namespace synq::agent
