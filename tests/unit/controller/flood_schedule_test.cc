// Proves that sustained-flood fields load (duration, rate as a number, a ramp or steps,
// lifetime, close, threads, sources, hosts' addresses), that each bad value or combination is
// reported naming its field and reason, that the new fields are sweepable, and that the
// scheduled rate of each profile (the result's per-second `rate`) is its integral over the
// second.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "controller/scenario/rate_profile.h"
#include "controller/scenario/sweep.h"
#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> ErrorsOf(const std::string& yaml) {
  std::vector<std::string> out;
  for (const ScenarioError& e : LoadScenario(yaml).errors) out.push_back(e.ToString());
  return out;
}

Scenario LoadOk(const std::string& yaml) {
  LoadResult result = LoadScenario(yaml);
  std::vector<std::string> errors;
  for (const ScenarioError& e : result.errors) errors.push_back(e.ToString());
  EXPECT_THAT(errors, IsEmpty()) << yaml;
  return result.scenario;
}

// A scenario with one listener and flood f1 whose extra fields are `fields`.
std::string WithFlood(const std::string& fields) {
  return "name: x\nlisteners: [{name: l1}]\nfloods:\n  - {name: f1, target: l1, " + fields + "}\n";
}

TEST(FloodSchedule, ChurnFloodLoadsWithoutAnAttemptCap) {
  const FloodDef f = LoadOk(WithFlood("duration: 10s, rate: 2000, close: rst, lifetime: 50ms, "
                                      "threads: 2, concurrency: 64"))
                         .floods.at(0);
  EXPECT_EQ(f.duration, seconds(10));
  EXPECT_EQ(f.connections, 0);  // bounded by time only
  EXPECT_EQ(f.rate_kind, RateKind::kConstant);
  EXPECT_EQ(f.rate, 2000);
  EXPECT_EQ(f.close, CloseMode::kRst);
  EXPECT_EQ(f.lifetime, milliseconds(50));
  EXPECT_EQ(f.threads, 2);
  EXPECT_EQ(DescribeRateProfile(f), "constant 2000/s");
}

TEST(FloodSchedule, DurationWithConnectionsKeepsTheCap) {
  const FloodDef f = LoadOk(WithFlood("duration: 5s, connections: 300")).floods.at(0);
  EXPECT_EQ(f.connections, 300);
  EXPECT_EQ(f.duration, seconds(5));
  EXPECT_EQ(f.close, CloseMode::kKeep);  // the default
}

TEST(FloodSchedule, RampLoadsAndRunsForItsLengthWithoutDuration) {
  const FloodDef f =
      LoadOk(WithFlood("rate: {from: 200, to: 3000, over: 10s}, close: fin")).floods.at(0);
  EXPECT_EQ(f.rate_kind, RateKind::kRamp);
  EXPECT_EQ(f.ramp_from, 200);
  EXPECT_EQ(f.ramp_to, 3000);
  EXPECT_EQ(f.ramp_over, seconds(10));
  EXPECT_EQ(f.duration, seconds(10));
  EXPECT_EQ(f.connections, 0);
  EXPECT_EQ(DescribeRateProfile(f), "ramp 200/s to 3000/s over 10s");
}

TEST(FloodSchedule, StepsLoad) {
  const FloodDef f = LoadOk(WithFlood("rate: {steps: [1000, 2000, 4000], each: 5s}")).floods.at(0);
  EXPECT_EQ(f.rate_kind, RateKind::kSteps);
  EXPECT_THAT(f.steps, ElementsAre(1000, 2000, 4000));
  EXPECT_EQ(f.steps_each, seconds(5));
  EXPECT_EQ(f.duration, seconds(15));
  EXPECT_EQ(DescribeRateProfile(f), "steps 1000/s, 2000/s, 4000/s each 5s");
}

TEST(FloodSchedule, SourcesAsAListOrACount) {
  Scenario s = LoadOk(WithFlood("sources: [198.18.1.2, 198.18.1.3]"));
  EXPECT_THAT(s.floods.at(0).sources, ElementsAre("198.18.1.2", "198.18.1.3"));
  s = LoadOk(
      "name: x\nhosts: {srv: {}, cli: {addresses: 4}}\nlisteners: [{name: l1, host: srv}]\n"
      "floods: [{name: f1, host: cli, target: l1, sources: 3}]\n");
  EXPECT_EQ(s.hosts.at(1).addresses, 4);
  EXPECT_EQ(s.floods.at(0).source_count, 3);
  EXPECT_TRUE(s.floods.at(0).sources.empty());
}

TEST(FloodSchedule, EveryBadFieldIsNamedWithItsReason) {
  EXPECT_THAT(ErrorsOf(WithFlood("close: linger")),
              ElementsAre("floods.f1.close: expected one of keep, rst, fin, got 'linger'"));
  EXPECT_THAT(ErrorsOf(WithFlood("lifetime: 50ms")),
              ElementsAre(HasSubstr("floods.f1.lifetime: only with close: rst or fin")));
  EXPECT_THAT(ErrorsOf(WithFlood("rate: {from: 10, to: -5, over: 3s}")),
              ElementsAre(HasSubstr("floods.f1.rate.to: must be")));
  EXPECT_THAT(ErrorsOf(WithFlood("rate: {from: 10, to: 50}")),
              ElementsAre("floods.f1.rate.over: required for a ramp",
                          "floods.f1.rate.over: a ramp needs over > 0"));
  EXPECT_THAT(ErrorsOf(WithFlood("rate: {from: 0, to: 0, over: 2s}")),
              ElementsAre("floods.f1.rate: a ramp from 0/s to 0/s launches nothing"));
  EXPECT_THAT(ErrorsOf(WithFlood("rate: {from: 1, steps: [1], each: 1s}")),
              ElementsAre(HasSubstr("floods.f1.rate: either a ramp")));
  EXPECT_THAT(ErrorsOf(WithFlood("rate: {steps: [], each: 1s}")),
              ElementsAre(HasSubstr("floods.f1.rate.steps: expected a non-empty list"),
                          "floods.f1.rate.steps: steps need at least one rate"));
  EXPECT_THAT(ErrorsOf(WithFlood("rate: {steps: [100, x], each: 0}")),
              ElementsAre(HasSubstr("floods.f1.rate.steps[1]:"), HasSubstr("floods.f1.rate.each:"),
                          "floods.f1.rate.each: steps need each > 0"));
  EXPECT_THAT(ErrorsOf(WithFlood("rate: {from: 1, to: 2, over: 1s, by: 3}")),
              ElementsAre(HasSubstr("floods.f1.rate.by: unknown field")));
  EXPECT_THAT(ErrorsOf(WithFlood("duration: 0")),
              ElementsAre(HasSubstr("floods.f1.duration: must be greater than 0")));
  EXPECT_THAT(ErrorsOf(WithFlood("threads: 4, concurrency: 2")),
              ElementsAre(HasSubstr(
                  "floods.f1.threads: 4 threads need a concurrency of at least 4, got 2")));
  EXPECT_THAT(ErrorsOf(WithFlood("threads: 0")),
              ElementsAre(HasSubstr("floods.f1.threads: must be between 1 and 256")));
  EXPECT_THAT(ErrorsOf(WithFlood("sources: [198.18.1.2, nothere, 198.18.1.2]")),
              ElementsAre(HasSubstr("floods.f1.sources[1]:"),
                          "floods.f1.sources[2]: '198.18.1.2' listed twice"));
  EXPECT_THAT(ErrorsOf(WithFlood("sources: 2")),
              ElementsAre("floods.f1.sources: 2 addresses asked, host 'local' has 1 (set "
                          "hosts.local.addresses: 2)"));
  EXPECT_THAT(ErrorsOf(WithFlood("rate.to: 5")), ElementsAre("floods.f1.rate.to: unknown field"));
  EXPECT_THAT(ErrorsOf(WithFlood("duration: 5s")),
              ElementsAre(HasSubstr("floods.f1.connections: needed with close: keep at rate 0")));
}

TEST(FloodSchedule, HostAddressesAreCheckedAndOnlyForEmbeddedHosts) {
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {a: {addresses: 0}}\n"),
              ElementsAre(HasSubstr("hosts.a.addresses: must be between 1 and 254")));
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {a: {agent: '10.0.0.1:7700', addresses: 2}}\n"),
              ElementsAre(HasSubstr("hosts.a.addresses: only for embedded hosts")));
}

TEST(FloodSchedule, NewFieldsAreSweepableAndCheckedPerRun) {
  const std::string yaml = WithFlood("duration: 2s, rate: {from: 100, to: 1000, over: 2s}") +
                           "sweep:\n  floods.f1.rate.to: [500, 2000]\n  floods.f1.threads: [1, 2]"
                           "\n  floods.f1.close: [rst, fin]\n";
  // threads 2 with concurrency 1 fails, reported against the sweep axis with the value.
  EXPECT_THAT(ErrorsOf(yaml), ElementsAre(HasSubstr("sweep.floods.f1.threads: with "
                                                    "floods.f1.threads=2: floods.f1.threads: 2 "
                                                    "threads need a concurrency of at least 2")));
  const Scenario s = LoadOk(WithFlood("duration: 2s, concurrency: 4, rate: 10") +
                            "sweep:\n  floods.f1.rate: [100, 200]\n  floods.f1.lifetime: [0, "
                            "10ms]\n  floods.f1.close: [rst]\n  floods.f1.sources: [1]\n"
                            "  floods.f1.duration: [1s]\n");
  absl::StatusOr<std::vector<RunPlan>> plans = ExpandSweep(s);
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_EQ(plans->size(), 4u);
  const FloodDef& last = plans->back().scenario.floods.at(0);
  EXPECT_EQ(last.rate, 200);
  EXPECT_EQ(last.lifetime, milliseconds(10));
  EXPECT_EQ(last.close, CloseMode::kRst);
  EXPECT_EQ(last.source_count, 1);
  EXPECT_EQ(last.duration, seconds(1));
  // Sweeping a ramp's end onto a constant rate makes it a ramp, which then needs `over`.
  EXPECT_THAT(ErrorsOf(WithFlood("duration: 2s, rate: 10") + "sweep:\n  floods.f1.rate.to: [5]\n"),
              ElementsAre(HasSubstr("floods.f1.rate.over: a ramp needs over > 0")));
  // And an unknown field names the sweepable ones.
  EXPECT_THAT(ErrorsOf(WithFlood("duration: 2s, rate: 10") + "sweep:\n  floods.f1.rate.by: [5]\n"),
              ElementsAre(HasSubstr("sweepable: close, concurrency")));
}

// A constant rate holds rate x window launches; a ramp from a to b over T holds (a + b) / 2 x T
// (the trapezoid); steps hold each rate x each. The per-second rate is that integral over the
// second, cut where the flood's duration ends.
TEST(RateProfile, ScheduledLaunchesAreTheIntegralOfTheRate) {
  FloodDef constant;
  constant.rate = 2000;
  constant.duration = milliseconds(2500);
  EXPECT_DOUBLE_EQ(ScheduledLaunches(constant, nanoseconds(0), seconds(10)), 20000);
  EXPECT_DOUBLE_EQ(ScheduledRateInSecond(constant, 2), 2000);  // half a second at 2000/s

  FloodDef ramp;
  ramp.rate_kind = RateKind::kRamp;
  ramp.ramp_from = 200;
  ramp.ramp_to = 3000;
  ramp.ramp_over = seconds(10);
  ramp.duration = seconds(12);
  EXPECT_DOUBLE_EQ(ScheduledLaunches(ramp, nanoseconds(0), seconds(10)), (200 + 3000) / 2.0 * 10);
  EXPECT_DOUBLE_EQ(ScheduledRate(ramp, seconds(5)), 1600);
  EXPECT_DOUBLE_EQ(ScheduledRateInSecond(ramp, 0), 200 + 280 / 2.0);  // slope 280/s per s
  EXPECT_DOUBLE_EQ(ScheduledRateInSecond(ramp, 11), 3000);            // after the ramp: `to`

  FloodDef steps;
  steps.rate_kind = RateKind::kSteps;
  steps.steps = {1000, 2000, 4000};
  steps.steps_each = milliseconds(1500);
  EXPECT_DOUBLE_EQ(ScheduledRateInSecond(steps, 0), 1000);
  EXPECT_DOUBLE_EQ(ScheduledRateInSecond(steps, 1), 1500);  // 0.5 s at 1000, 0.5 s at 2000
  EXPECT_DOUBLE_EQ(ScheduledRate(steps, seconds(100)), 4000);
  EXPECT_THAT(ScheduledLaunches(steps, nanoseconds(0), milliseconds(4500)),
              DoubleNear(1500 + 3000 + 6000, 1e-9));
}

}  // namespace
}  // namespace synq::controller
