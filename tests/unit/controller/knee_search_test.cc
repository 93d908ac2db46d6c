// Proves the knee search's algorithm against deterministic trial functions: a step function's
// knee is found within the precision with the number of trials doubling and bisection imply,
// a start above the knee halves down first, a target that passes everything stops at max, one
// that passes nothing reports no knee, a trial that cannot run ends the search, and a percentage
// precision is taken of the interval's upper end.
#include "controller/search/knee_search.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace synq::controller::search {
namespace {

using ::testing::HasSubstr;

// A target that sustains every rate up to `knee` and none above.
auto Step(double knee) {
  return [knee](double rate, const std::string&) {
    return rate <= knee ? TrialVerdict::kPass : TrialVerdict::kFail;
  };
}

std::vector<double> Rates(const KneeOutcome& o) {
  std::vector<double> rates;
  for (const auto& s : o.steps) rates.push_back(s.rate);
  return rates;
}

TEST(KneeSearch, StepFunctionKneeFoundWithinPrecisionInExpectedTrials) {
  KneeBounds b;
  b.start = 100;
  b.max = 100000;
  b.precision = 50;
  // Doubling 100, 200, 400 pass, 800 fails (4 trials); bisection of [400, 800] to 50 wide takes
  // log2(400 / 50) = 3 trials: 600 pass, 700 pass, 750 fail.
  const KneeOutcome o = SearchKnee(b, Step(730));
  EXPECT_THAT(Rates(o), ::testing::ElementsAre(100, 200, 400, 800, 600, 700, 750));
  ASSERT_TRUE(o.knee.has_value());
  EXPECT_EQ(*o.knee, 700);
  EXPECT_EQ(*o.lowest_fail, 750);
  EXPECT_EQ(o.steps[0].phase, "doubling");
  EXPECT_EQ(o.steps[4].phase, "bisect");
  EXPECT_TRUE(o.note.empty()) << o.note;
}

TEST(KneeSearch, EveryKneeIsBracketedWithinPrecisionAndTrialCountIsLogarithmic) {
  KneeBounds b;
  b.start = 100;
  b.max = 100000;
  b.precision = 10;
  for (double knee = 101; knee < 5000; knee += 37) {
    SCOPED_TRACE(knee);
    const KneeOutcome o = SearchKnee(b, Step(knee));
    ASSERT_TRUE(o.knee && o.lowest_fail);
    EXPECT_LE(*o.knee, knee);
    EXPECT_GT(*o.lowest_fail, knee);
    EXPECT_LE(*o.lowest_fail - *o.knee, b.precision);
    // Doubling: trials until the first rate above the knee, 100 * 2^k > knee.
    const int doubling = static_cast<int>(std::floor(std::log2(knee / b.start))) + 2;
    const double width = b.start * std::pow(2, doubling - 2);  // last pass to first failure
    // Halving a width to <= precision takes ceil(log2(width / precision)) steps; rounding the
    // midpoint to whole connects/s may cost one more.
    const int bisect = static_cast<int>(std::ceil(std::log2(width / b.precision)));
    EXPECT_GE(static_cast<int>(o.steps.size()), doubling + bisect);
    EXPECT_LE(static_cast<int>(o.steps.size()), doubling + bisect + 1);
  }
}

TEST(KneeSearch, StartAboveTheKneeHalvesThenBisects) {
  KneeBounds b;
  b.start = 1000;
  b.precision = 10;
  const KneeOutcome o = SearchKnee(b, Step(130));
  // 1000, 500, 250 fail, 125 passes, then [125, 250] bisected to <= 10 wide.
  ASSERT_GE(o.steps.size(), 4u);
  EXPECT_EQ(o.steps[1].phase, "halving");
  EXPECT_EQ(o.steps[3].rate, 125);
  EXPECT_EQ(o.steps[3].verdict, TrialVerdict::kPass);
  ASSERT_TRUE(o.knee && o.lowest_fail);
  EXPECT_LE(*o.knee, 130);
  EXPECT_GT(*o.lowest_fail, 130);
  EXPECT_LE(*o.lowest_fail - *o.knee, 10);
}

TEST(KneeSearch, TargetThatPassesEverythingStopsAtMax) {
  KneeBounds b;
  b.start = 100;
  b.max = 1000;
  const KneeOutcome o = SearchKnee(b, Step(1e9));
  EXPECT_THAT(Rates(o), ::testing::ElementsAre(100, 200, 400, 800, 1000));
  EXPECT_EQ(*o.knee, 1000);
  EXPECT_FALSE(o.lowest_fail.has_value());
  EXPECT_THAT(o.note, HasSubstr("at or above"));
}

TEST(KneeSearch, TargetThatPassesNothingHasNoKnee) {
  KneeBounds b;
  b.start = 100;
  b.min_rate = 1;
  const KneeOutcome o = SearchKnee(b, Step(0));
  EXPECT_FALSE(o.knee.has_value());
  // 100 and six halvings down to 1.5625; the next, 0.78, is below min_rate.
  EXPECT_EQ(o.steps.size(), 7u);
  EXPECT_EQ(o.steps.back().rate, 1.5625);
  EXPECT_THAT(o.note, HasSubstr("every trial failed"));
}

TEST(KneeSearch, TrialThatCannotRunEndsTheSearchKeepingTheKneeSoFar) {
  KneeBounds b;
  b.start = 100;
  const KneeOutcome o = SearchKnee(b, [](double rate, const std::string&) {
    return rate < 400 ? TrialVerdict::kPass : TrialVerdict::kAbort;
  });
  EXPECT_EQ(o.steps.size(), 3u);
  EXPECT_EQ(*o.knee, 200);
  EXPECT_THAT(o.note, HasSubstr("could not run"));
}

TEST(KneeSearch, PercentPrecisionIsTakenOfTheUpperEnd) {
  KneeBounds b;
  b.start = 1000;
  b.precision = 2;
  b.precision_is_percent = true;
  const KneeOutcome o = SearchKnee(b, Step(3333));
  ASSERT_TRUE(o.knee && o.lowest_fail);
  EXPECT_LE(*o.lowest_fail - *o.knee, 0.02 * *o.lowest_fail);
  EXPECT_GT(*o.lowest_fail - *o.knee, 0.02 * *o.lowest_fail / 2 - 1);  // stopped, not overshot
  EXPECT_DOUBLE_EQ(StopWidth(b, 5000), 100);
}

TEST(KneeSearch, MidpointRoundsToWholeConnectsOnlyWhileTheIntervalAllowsIt) {
  EXPECT_EQ(Midpoint(400, 801), 601);  // 600.5 rounds away from zero
  EXPECT_EQ(Midpoint(10, 11), 10.5);
}

}  // namespace
}  // namespace synq::controller::search
