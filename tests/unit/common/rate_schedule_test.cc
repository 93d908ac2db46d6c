// Proves the open-loop schedule maths of RateSchedule: attempt k is due when the integral of the
// rate reaches k, for a constant rate, a ramp up, a ramp down and steps (zero steps included);
// CountBefore agrees with Due attempt by attempt; and bad profiles are refused naming the field.
// Expected instants are solved by hand from the rate, never taken from the code under test.
#include "common/rate_schedule.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace synq::common {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

RateProfile Constant(double rate) {
  RateProfile p;
  p.rate = rate;
  return p;
}

RateProfile Ramp(double from, double to, std::chrono::nanoseconds over) {
  RateProfile p;
  p.kind = RateProfile::Kind::kRamp;
  p.from = from;
  p.to = to;
  p.over = over;
  return p;
}

RateProfile Steps(std::vector<double> steps, std::chrono::nanoseconds each) {
  RateProfile p;
  p.kind = RateProfile::Kind::kSteps;
  p.steps = std::move(steps);
  p.each = each;
  return p;
}

TEST(RateSchedule, ConstantRateDueAtKOverRate) {
  const RateSchedule s(Constant(1000));
  EXPECT_FALSE(s.unpaced());
  EXPECT_EQ(s.Due(0), 0ns);
  EXPECT_EQ(s.Due(1), 1ms);
  EXPECT_EQ(s.Due(2500), 2500ms);
  // [0, 2 s) holds attempts 0..1999; the 2000th is due at exactly 2 s, which is not before.
  EXPECT_EQ(s.CountBefore(2s), 2000u);
  EXPECT_EQ(s.CountBefore(2s + 1ns), 2001u);
  EXPECT_EQ(s.CountBefore(0s), 0u);
}

TEST(RateSchedule, RateZeroIsUnpaced) {
  const RateSchedule s(Constant(0));
  EXPECT_TRUE(s.unpaced());
  EXPECT_EQ(s.Due(12345), 0ns);
  EXPECT_EQ(s.CountBefore(1s), std::numeric_limits<uint64_t>::max());
}

TEST(RateSchedule, RampUpSolvesTheQuadratic) {
  // 0 -> 100/s over 10 s: N(t) = 5 t^2 within the ramp (500 at 10 s), then 500 + 100 (t - 10).
  const RateSchedule s(Ramp(0, 100, 10s));
  EXPECT_EQ(s.Due(0), 0ns);
  EXPECT_NEAR(s.DueSeconds(5), 1.0, 1e-12);     // 5 t^2 = 5
  EXPECT_NEAR(s.DueSeconds(20), 2.0, 1e-12);    // 5 t^2 = 20
  EXPECT_NEAR(s.DueSeconds(125), 5.0, 1e-12);   // 5 t^2 = 125
  EXPECT_NEAR(s.DueSeconds(500), 10.0, 1e-12);  // the ramp's end
  EXPECT_NEAR(s.DueSeconds(600), 11.0, 1e-12);  // then 100/s
  EXPECT_NEAR(s.Cumulative(3.0), 45.0, 1e-9);
  // Attempts 0..44 are due before 3 s (44 at sqrt(8.8) = 2.966 s, 45 at exactly 3 s).
  EXPECT_EQ(s.CountBefore(3s), 45u);
}

TEST(RateSchedule, RampWithStartRateAndRampDown) {
  // 1000 -> 3000/s over 2 s: N(t) = 1000 t + 500 t^2; N(1) = 1500, N(2) = 4000.
  const RateSchedule up(Ramp(1000, 3000, 2s));
  EXPECT_NEAR(up.DueSeconds(1500), 1.0, 1e-12);
  EXPECT_NEAR(up.DueSeconds(4000), 2.0, 1e-12);
  EXPECT_NEAR(up.DueSeconds(4300), 2.1, 1e-12);
  // 100 -> 0/s over 10 s: N(t) = 100 t - 5 t^2, 500 in all; nothing is ever due after that.
  const RateSchedule down(Ramp(100, 0, 10s));
  EXPECT_NEAR(down.DueSeconds(95), 1.0, 1e-12);   // 100 - 5 = 95
  EXPECT_NEAR(down.DueSeconds(375), 5.0, 1e-12);  // 500 - 125
  EXPECT_NEAR(down.DueSeconds(500), 10.0, 1e-9);
  EXPECT_TRUE(std::isinf(down.DueSeconds(501)));
  EXPECT_EQ(down.Due(501), std::chrono::nanoseconds::max());
  EXPECT_EQ(down.CountBefore(3600s), 501u);  // attempts 0..500
}

TEST(RateSchedule, StepsArePiecewiseConstant) {
  // 10/s for 1 s, 0/s for 1 s, 20/s for 1 s, then 20/s on: N(1) = 10, N(2) = 10, N(3) = 30.
  const RateSchedule s(Steps({10, 0, 20}, 1s));
  EXPECT_EQ(s.Due(0), 0ns);
  EXPECT_EQ(s.Due(1), 100ms);
  EXPECT_EQ(s.Due(10), 1s);      // reached at the end of the first step
  EXPECT_EQ(s.Due(11), 2050ms);  // the silent second is skipped: 2 s + 1/20 s
  EXPECT_EQ(s.Due(30), 3s);
  EXPECT_EQ(s.Due(31), 3050ms);       // the last step's rate goes on
  EXPECT_EQ(s.CountBefore(2s), 11u);  // 0..10; the 11th waits for the third step
  // A final step of 0 ends the schedule.
  const RateSchedule ends(Steps({5, 0}, 1s));
  EXPECT_EQ(ends.Due(5), 1s);
  EXPECT_EQ(ends.Due(6), std::chrono::nanoseconds::max());
}

TEST(RateSchedule, CountBeforeAgreesWithDueForEveryAttempt) {
  for (const RateProfile& p :
       {Constant(333), Ramp(50, 700, 3s), Ramp(700, 50, 3s), Steps({100, 0, 400, 30}, 700ms)}) {
    const RateSchedule s(p);
    for (auto t = 0ms; t <= 5s; t += 37ms) {
      uint64_t brute = 0;
      while (s.Due(brute) < t) ++brute;
      EXPECT_EQ(s.CountBefore(t), brute) << t.count() << " ms";
    }
    // Due is non-decreasing and Cumulative(Due(k)) reaches k.
    for (uint64_t k = 1; k < 2000; ++k) {
      ASSERT_LE(s.Due(k - 1), s.Due(k)) << k;
      EXPECT_NEAR(s.Cumulative(s.DueSeconds(k)), static_cast<double>(k), 1e-6) << k;
    }
  }
}

TEST(RateProfileValidation, BadProfilesNameTheField) {
  auto expect = [](const RateProfile& p, const std::string& field) {
    const absl::Status status = ValidateRateProfile(p, "floods.f.");
    ASSERT_FALSE(status.ok()) << field;
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr("floods.f." + field)) << status;
  };
  EXPECT_TRUE(ValidateRateProfile(Constant(0), "").ok());
  EXPECT_TRUE(ValidateRateProfile(Ramp(0, 10, 1s), "").ok());
  EXPECT_TRUE(ValidateRateProfile(Steps({0, 1}, 1s), "").ok());
  expect(Constant(-1), "rate");
  expect(Constant(std::nan("")), "rate");
  expect(Constant(std::numeric_limits<double>::infinity()), "rate");
  expect(Ramp(-1, 10, 1s), "ramp.from");
  expect(Ramp(1, std::nan(""), 1s), "ramp.to");
  expect(Ramp(1, 10, 0s), "ramp.over");
  expect(Ramp(0, 0, 1s), "ramp");
  expect(Steps({}, 1s), "steps");
  expect(Steps({1, -2}, 1s), "steps[1]");
  expect(Steps({0, 0}, 1s), "steps");
  expect(Steps({1, 2}, 0s), "steps.each");
}

}  // namespace
}  // namespace synq::common
