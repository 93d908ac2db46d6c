// Proves that every numeric scenario field is held to its bound (common/limits.h), with an error
// naming the field path and the bound, that the 0.4 scale examples stay within them, that sweeps
// validate in linear time (a 100,000-value sweep loads and expands) and that a payload is stored
// once for every run of a sweep, and that the controller's flood budget saturates instead of
// overflowing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "controller/run/phases.h"
#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> ErrorsOf(const std::string& yaml) {
  std::vector<std::string> out;
  for (const ScenarioError& e : LoadScenario(yaml).errors) out.push_back(e.ToString());
  return out;
}

std::string WithFlood(const std::string& fields) {
  return absl::StrCat(R"(
name: bounds
listeners:
  - { name: l1, backlog: 4, accept: never }
floods:
  - { name: f1, target: l1, connections: 10, )",
                      fields, " }\n");
}

TEST(ScenarioBounds, ThirtyOneYearHoldIsRefusedWithTheDayBound) {
  // 31 years = 978,285,600 s; the bound is a day.
  EXPECT_THAT(ErrorsOf(WithFlood("hold: 978285600s")),
              ElementsAre("floods.f1.hold: '978285600s' is too long: at most 24h"));
}

TEST(ScenarioBounds, DurationOfExactlyADayIsAccepted) {
  EXPECT_THAT(ErrorsOf(WithFlood("hold: 86400s")), IsEmpty());
}

TEST(ScenarioBounds, SampleIntervalBelowAMillisecondIsRefused) {
  EXPECT_THAT(ErrorsOf("name: s\nsample_interval: 100us\n"),
              ElementsAre("sample_interval: must be between 1ms and 24h, got '100us'"));
  EXPECT_THAT(ErrorsOf("name: s\nsample_interval: 1ms\n"), IsEmpty());
}

TEST(ScenarioBounds, ConnectTimeoutAndLifetimeAreBoundedByAnHour) {
  EXPECT_THAT(ErrorsOf(WithFlood("connect_timeout: 3601s")),
              ElementsAre("floods.f1.connect_timeout: must be between 1ns and 1h, got '3601s'"));
  EXPECT_THAT(ErrorsOf(WithFlood("close: rst, lifetime: 7200s")),
              ElementsAre("floods.f1.lifetime: must be between 0 and 1h, got '7200s'"));
}

TEST(ScenarioBounds, PayloadAbove64KiBIsRefusedWithItsSize) {
  const std::string at_bound(common::kMaxPayloadBytes, 'x');
  EXPECT_THAT(ErrorsOf(WithFlood(absl::StrCat("payload: ", at_bound))), IsEmpty());
  EXPECT_THAT(ErrorsOf(WithFlood(absl::StrCat("payload: ", at_bound, "x"))),
              ElementsAre("floods.f1.payload: at most 65536 bytes, got 65537"));
}

TEST(ScenarioBounds, FloodRatesAreBoundedPerField) {
  EXPECT_THAT(ErrorsOf(WithFlood("rate: 1e300")),
              ElementsAre("floods.f1.rate: must be between 0 and 1e+07, got 1e300"));
  EXPECT_THAT(ErrorsOf(WithFlood("rate: {from: 1, to: 2e7, over: 1s}")),
              ElementsAre("floods.f1.rate.to: must be between 0 and 1e+07, got 2e7"));
}

TEST(ScenarioBounds, ShapingDelayIsBoundedByAMinute) {
  EXPECT_THAT(ErrorsOf("name: s\nshaping:\n  - { delay: 61s }\n"),
              ElementsAre("shaping[0].delay: must be between 0 and 1min, got '61s'"));
}

TEST(ScenarioBounds, ScaleExamplesOfRelease04StayWithinTheBounds) {
  for (const char* name : {"hold-100k.yaml", "backlog-65535.yaml", "knee-search.yaml"}) {
    const LoadResult result = LoadScenarioFile(absl::StrCat(SYNQ_SOURCE_DIR, "/examples/", name));
    std::vector<std::string> errors;
    for (const ScenarioError& e : result.errors) errors.push_back(e.ToString());
    EXPECT_THAT(errors, IsEmpty()) << name;
  }
  // 200k held connections (docs/scale.md): one flood, 200,000 attempts all in flight.
  EXPECT_THAT(ErrorsOf(R"(
name: held
listeners:
  - { name: l1, backlog: 65535, accept: never }
floods:
  - { name: f1, target: l1, connections: 200000, concurrency: 200000, hold: 10s }
)"),
              IsEmpty());
}

std::string Sweep(size_t values, const std::string& flood_fields) {
  std::string yaml = absl::StrCat(R"(
name: big
listeners:
  - { name: l1, backlog: 4, accept: never }
floods:
  - { name: f1, target: l1, connections: 10)",
                                  flood_fields, R"( }
sweep:
  listeners.l1.backlog: [)");
  for (size_t i = 0; i < values; ++i) absl::StrAppend(&yaml, i == 0 ? "" : ", ", i);
  absl::StrAppend(&yaml, "]\n");
  return yaml;
}

TEST(SweepScale, HundredThousandValueSweepValidatesAndExpands) {
  const auto start = std::chrono::steady_clock::now();
  const LoadResult result = LoadScenario(Sweep(100'000, ""));
  const auto loaded = std::chrono::steady_clock::now();
  ASSERT_TRUE(result.ok()) << result.errors.front().ToString();
  absl::StatusOr<std::vector<RunPlan>> plans = ExpandSweep(result.scenario);
  const auto expanded = std::chrono::steady_clock::now();
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_EQ(plans->size(), 100'000u);
  EXPECT_EQ(plans->back().scenario.listeners[0].backlog, 99'999);
  // Figures for the record, not a check (the machine is shared).
  std::printf("100,000-value sweep: load %.2f s, expand %.2f s\n",
              std::chrono::duration<double>(loaded - start).count(),
              std::chrono::duration<double>(expanded - loaded).count());
}

TEST(SweepScale, PayloadIsStoredOnceForEveryRunOfASweep) {
  const std::string payload(common::kMaxPayloadBytes, 'p');
  const LoadResult result = LoadScenario(Sweep(1'000, absl::StrCat(", payload: ", payload)));
  ASSERT_TRUE(result.ok()) << result.errors.front().ToString();
  absl::StatusOr<std::vector<RunPlan>> plans = ExpandSweep(result.scenario);
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_EQ(plans->size(), 1'000u);
  for (const RunPlan& plan : *plans) {
    EXPECT_EQ(plan.scenario.floods[0].payload, payload);
    // The same storage, not an equal copy: 1,000 runs hold 64 KiB, not 64 MiB.
    EXPECT_TRUE(plan.scenario.floods[0].payload.SharesWith(result.scenario.floods[0].payload));
  }
}

TEST(FloodBudget, SaturatesInsteadOfOverflowing) {
  FloodDef f;
  f.connections = common::kMaxConnections;
  f.concurrency = 1;
  f.connect_timeout = common::kMaxConnectTimeout;
  // 10M waves x 1 h = 3.6e19 ns, past int64's 9.2e18: the budget is "as long as can be".
  EXPECT_EQ(FloodBudget(f), std::chrono::nanoseconds::max());
  f.connections = 10;
  f.connect_timeout = std::chrono::seconds(1);
  f.hold = std::chrono::seconds(1);
  // 10 waves of one connect, each waiting at most its 1 s timeout, then the 1 s hold.
  EXPECT_EQ(FloodBudget(f), std::chrono::seconds(11));
}

}  // namespace
}  // namespace synq::controller
