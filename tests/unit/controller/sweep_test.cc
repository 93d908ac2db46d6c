// Proves that sweep paths are checked and each swept value is validated like the field it
// replaces, and that ExpandSweep yields the cartesian product (first axis outermost) with typed
// params and concrete scenarios.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

using std::chrono::milliseconds;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

std::vector<std::string> Errors(const LoadResult& result) {
  std::vector<std::string> out;
  for (const ScenarioError& e : result.errors) out.push_back(e.ToString());
  return out;
}

std::vector<std::string> ErrorsOf(const std::string& yaml) { return Errors(LoadScenario(yaml)); }

Scenario LoadOk(const std::string& yaml) {
  LoadResult result = LoadScenario(yaml);
  EXPECT_THAT(Errors(result), IsEmpty()) << yaml;
  return result.scenario;
}

std::vector<RunPlan> ExpandOk(const Scenario& s) {
  absl::StatusOr<std::vector<RunPlan>> plans = ExpandSweep(s);
  EXPECT_TRUE(plans.ok()) << plans.status();
  return plans.ok() ? *std::move(plans) : std::vector<RunPlan>{};
}

// "path=text" per param, for compact order checks.
std::string Params(const RunPlan& plan) {
  std::string out;
  for (const auto& [path, value] : plan.params) {
    if (!out.empty()) out += " ";
    out += path + "=" + value.Text();
  }
  return out;
}

constexpr char kBase[] = R"(
name: sweep
hosts: {server: {}, client: {}}
shaping: [{ host: server, to: client, delay: 10ms }]
listeners: [{ name: l1, host: server, backlog: 4 }]
floods: [{ name: f1, host: client, target: l1 }]
)";

TEST(Sweep, NoSweepGivesOneRunWithEmptyParams) {
  const std::vector<RunPlan> plans = ExpandOk(LoadOk(kBase));
  ASSERT_THAT(plans, SizeIs(1));
  EXPECT_THAT(plans[0].params, IsEmpty());
  EXPECT_EQ(plans[0].scenario.listeners[0].backlog, 4);
}

TEST(Sweep, ExpansionIsTheCartesianProductWithFirstAxisOutermost) {
  const Scenario s = LoadOk(std::string(kBase) + R"(
sweep:
  listeners.l1.backlog: [1, 2, 3]
  floods.f1.connections: [10, 20]
)");
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(6));
  std::vector<std::string> order;
  for (const RunPlan& plan : plans) order.push_back(Params(plan));
  EXPECT_THAT(order, ElementsAre("listeners.l1.backlog=1 floods.f1.connections=10",
                                 "listeners.l1.backlog=1 floods.f1.connections=20",
                                 "listeners.l1.backlog=2 floods.f1.connections=10",
                                 "listeners.l1.backlog=2 floods.f1.connections=20",
                                 "listeners.l1.backlog=3 floods.f1.connections=10",
                                 "listeners.l1.backlog=3 floods.f1.connections=20"));
  EXPECT_EQ(plans[3].scenario.listeners[0].backlog, 2);
  EXPECT_EQ(plans[3].scenario.floods[0].connections, 20);
  EXPECT_THAT(plans[3].scenario.sweep, IsEmpty());  // each run is concrete
}

TEST(Sweep, AxesKeepFileOrder) {
  const Scenario s = LoadOk(std::string(kBase) + R"(
sweep:
  sample_interval: [10ms]
  floods.f1.hold: [2s]
  listeners.l1.port: [80]
)");
  ASSERT_THAT(s.sweep, SizeIs(3));
  EXPECT_EQ(s.sweep[0].path, "sample_interval");
  EXPECT_EQ(s.sweep[1].path, "floods.f1.hold");
  EXPECT_EQ(s.sweep[2].path, "listeners.l1.port");
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(1));
  EXPECT_EQ(Params(plans[0]), "sample_interval=10ms floods.f1.hold=2s listeners.l1.port=80");
  EXPECT_EQ(plans[0].scenario.sample_interval, milliseconds(10));
  EXPECT_EQ(plans[0].scenario.floods[0].hold, std::chrono::seconds(2));
  EXPECT_EQ(plans[0].scenario.listeners[0].port, 80);
}

TEST(Sweep, ParamsAreTypedFromTheYamlScalar) {
  const Scenario s = LoadOk(std::string(kBase) + R"(
sweep:
  listeners.l1.close_on_accept: [true, false]
  floods.f1.rate: [10, 2.5]
  floods.f1.payload: ["7", hello]
)");
  ASSERT_THAT(s.sweep, SizeIs(3));
  EXPECT_EQ(s.sweep[0].values[0].kind(), SweepValue::Kind::kBool);
  EXPECT_EQ(s.sweep[0].values[0].Text(), "true");
  EXPECT_EQ(s.sweep[1].values[0].kind(), SweepValue::Kind::kInt);
  EXPECT_EQ(s.sweep[1].values[1].kind(), SweepValue::Kind::kDouble);
  EXPECT_EQ(s.sweep[1].values[1].Text(), "2.5");
  EXPECT_EQ(s.sweep[2].values[0].kind(), SweepValue::Kind::kString);  // quoted in YAML
  EXPECT_EQ(s.sweep[2].values[1].kind(), SweepValue::Kind::kString);
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(8));
  const RunPlan& last = plans.back();
  EXPECT_FALSE(last.scenario.listeners[0].close_on_accept);
  EXPECT_EQ(last.scenario.floods[0].rate, 2.5);
  EXPECT_EQ(last.scenario.floods[0].payload, "hello");
  ASSERT_THAT(last.params, SizeIs(3));
  EXPECT_EQ(last.params[1].second.kind(), SweepValue::Kind::kDouble);
}

TEST(Sweep, SettingsKeyWithDotsIsOneKey) {
  const Scenario s = LoadOk(std::string(kBase) + R"(
sweep:
  settings.server.net.core.somaxconn: [16, 4096]
  settings.server.net.ipv4.tcp_syncookies: [0, 1]
)");
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(4));
  EXPECT_EQ(plans[2].scenario.settings.at("server").at("net.core.somaxconn"), 4096);
  EXPECT_EQ(plans[2].scenario.settings.at("server").at("net.ipv4.tcp_syncookies"), 0);
  EXPECT_EQ(plans[2].params[0].first, "settings.server.net.core.somaxconn");
}

// A setting's range is its host's agent's (checked once the hosts answer: setting_check_test);
// the sweep checks the shape, an integer.
TEST(Sweep, SettingValueThatIsNotAnIntegerIsAnErrorNamingTheSweepPath) {
  EXPECT_THAT(
      ErrorsOf(std::string(kBase) + R"(
sweep:
  settings.server.net.ipv4.tcp_syncookies: [0, 1, 5, 1.5]
)"),
      ElementsAre(AllOf(StartsWith("sweep.settings.server.net.ipv4.tcp_syncookies: value 1.5: "),
                        HasSubstr("integer"))));
}

TEST(Sweep, ValuesAreValidatedLikeTheirField) {
  EXPECT_THAT(ErrorsOf(std::string(kBase) + R"(
sweep:
  listeners.l1.port: [80, 70000, "81"]
  floods.f1.connections: [0, 1.5]
  floods.f1.hold: [5]
  listeners.l1.accept: [never, sometimes]
  shaping[0].loss: [50, 200]
)"),
              ElementsAre("sweep.listeners.l1.port: value 70000: must be between 0 and 65535, "
                          "got 70000",
                          "sweep.listeners.l1.port: value '81': expected an integer, got the "
                          "string '81'",
                          "sweep.floods.f1.connections: value 0: must be between 1 and "
                          "10000000, got 0",
                          "sweep.floods.f1.connections: value 1.5: expected an integer, got '1.5'",
                          "sweep.floods.f1.hold: value 5: '5' needs a unit: ms, s or us",
                          "sweep.listeners.l1.accept: value 'sometimes': expected one of never, "
                          "paced, immediate, got 'sometimes'",
                          "sweep.shaping[0].loss: value 200: must be between 0 and 100, got 200"));
}

TEST(Sweep, PathNamingNothingIsAnError) {
  EXPECT_THAT(ErrorsOf(std::string(kBase) + R"(
sweep:
  listeners.l9.backlog: [1]
  listeners.l1.colour: [1]
  listeners.l1.name: [x]
  floods.f1.host: [server]
  settings.nohost.net.core.somaxconn: [1]
  settings.server.Net.Foo: [1]
  shaping[3].delay: [1ms]
  shaping.client.delay: [1ms]
  shaping[0].backend: [netem]
  timeout: [1s]
)"),
              ElementsAre("sweep.listeners.l9.backlog: no listener named 'l9'",
                          StartsWith("sweep.listeners.l1.colour: listeners have no sweepable "
                                     "field 'colour'; sweepable: "),
                          StartsWith("sweep.listeners.l1.name: listeners have no sweepable"),
                          StartsWith("sweep.floods.f1.host: floods have no sweepable"),
                          "sweep.settings.nohost.net.core.somaxconn: no host named 'nohost'",
                          StartsWith("sweep.settings.server.Net.Foo: not a sysctl key"),
                          "sweep.shaping[3].delay: no shaping entry 3 (there are 1)",
                          "sweep.shaping.client.delay: no shaping entry for host 'client'",
                          StartsWith("sweep.shaping[0].backend: shaping entries have no sweepable"),
                          StartsWith("sweep.timeout: does not name a field")));
}

TEST(Sweep, ValuesMustBeANonEmptyListOfScalars) {
  EXPECT_THAT(
      ErrorsOf(std::string(kBase) + R"(
sweep:
  listeners.l1.backlog: []
  listeners.l1.port: 80
  floods.f1.connections: [1, [2]]
)"),
      ElementsAre("sweep.listeners.l1.backlog: expected a non-empty list of values, got an "
                  "empty list",
                  "sweep.listeners.l1.port: expected a non-empty list of values, got a scalar",
                  "sweep.floods.f1.connections: value 1: expected a scalar, got a list"));
}

TEST(Sweep, ShapingIsSweptByIndexOrByHost) {
  const Scenario s = LoadOk(std::string(kBase) + R"(
sweep:
  shaping[0].delay: [0ms, 100ms]
  shaping.server.rate: [1mbit]
)");
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(2));
  EXPECT_EQ(plans[1].scenario.shaping[0].delay, milliseconds(100));
  EXPECT_EQ(plans[1].scenario.shaping[0].rate_bits_per_second, 1'000'000u);
}

TEST(Sweep, ShapingByHostWithSeveralEntriesIsAmbiguous) {
  EXPECT_THAT(ErrorsOf(R"(
name: x
hosts: {a: {}, b: {}, c: {}}
shaping: [{host: a, to: b}, {host: a, to: c}]
sweep:
  shaping.a.delay: [1ms]
)"),
              ElementsAre(StartsWith("sweep.shaping.a.delay: 2 shaping entries for host 'a'")));
}

TEST(Sweep, SweepingTheSameFieldTwiceIsAnError) {
  EXPECT_THAT(ErrorsOf(std::string(kBase) + R"(
sweep:
  shaping[0].delay: [1ms]
  shaping.server.delay: [2ms]
)"),
              ElementsAre("sweep.shaping.server.delay: sweeps the same field as "
                          "'shaping[0].delay'"));
}

TEST(Sweep, FloodTargetToUnknownListenerIsReportedAgainstTheSweep) {
  EXPECT_THAT(ErrorsOf(std::string(kBase) + R"(
sweep:
  floods.f1.target: [l1, "127.0.0.1:80", l9]
)"),
              ElementsAre("sweep.floods.f1.target: with floods.f1.target='l9': "
                          "floods.f1.target: no listener named 'l9'"));
}

TEST(Sweep, SweepingAcceptToPacedNeedsAnInterval) {
  EXPECT_THAT(ErrorsOf(std::string(kBase) + R"(
sweep:
  listeners.l1.accept: [never, paced]
)"),
              ElementsAre("sweep.listeners.l1.accept: with listeners.l1.accept='paced': "
                          "listeners.l1.accept_interval: accept: paced needs accept_interval > "
                          "0 or accept_rate > 0"));
}

TEST(Sweep, SweptAcceptModeMayCarryAnIntervalFromTheFile) {
  const Scenario s = LoadOk(R"(
name: x
listeners: [{ name: l1, accept: immediate, accept_interval: 10ms }]
sweep:
  listeners.l1.accept: [never, paced, immediate]
  listeners.l1.accept_interval: [1ms, 5ms]
)");
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(6));
  EXPECT_EQ(plans[3].scenario.listeners[0].accept, AcceptMode::kPaced);
  EXPECT_EQ(plans[3].scenario.listeners[0].accept_interval, milliseconds(5));
}

TEST(Sweep, TooManyRunsIsAnError) {
  std::string yaml = std::string(kBase) + "sweep:\n";
  const std::string values = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]";
  yaml += "  listeners.l1.backlog: " + values + "\n";
  yaml += "  listeners.l1.port: " + values + "\n";
  yaml += "  floods.f1.connections: " + values + "\n";
  yaml += "  floods.f1.concurrency: " + values + "\n";
  EXPECT_THAT(ErrorsOf(yaml), ElementsAre(HasSubstr("sweep: more than 100000 runs")));
}

TEST(Sweep, MakeSweepAxisRejectsAPathThatNamesNothing) {
  const Scenario s = LoadOk(kBase);
  absl::StatusOr<SweepAxis> axis = MakeSweepAxis(s, "listeners.l9.backlog", {SweepValue::Int(1)});
  ASSERT_FALSE(axis.ok());
  EXPECT_EQ(axis.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(axis.status().message()),
              HasSubstr("sweep.listeners.l9.backlog: no listener named 'l9'"));
}

TEST(Sweep, MakeSweepAxisRejectsAValueOfTheWrongType) {
  const Scenario s = LoadOk(kBase);
  absl::StatusOr<SweepAxis> axis =
      MakeSweepAxis(s, "listeners.l1.backlog", {SweepValue::String("lots")});
  ASSERT_FALSE(axis.ok());
  EXPECT_THAT(std::string(axis.status().message()),
              HasSubstr("sweep.listeners.l1.backlog: value 'lots': expected an integer"));
}

TEST(Sweep, ExpandSweepRejectsAnAxisThatWasNeverResolved) {
  Scenario s = LoadOk(kBase);
  SweepAxis axis;
  axis.path = "listeners.l1.backlog";
  axis.values = {SweepValue::Int(1)};
  s.sweep.push_back(axis);
  absl::StatusOr<std::vector<RunPlan>> plans = ExpandSweep(s);
  ASSERT_FALSE(plans.ok());
  EXPECT_EQ(plans.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plans.status().message()),
              HasSubstr("sweep.listeners.l1.backlog: not resolved"));
}

TEST(Sweep, ExampleBacklogSweepExpandsToTenRuns) {
  const Scenario s = LoadOk(std::string(kBase) + R"(
sweep:
  listeners.l1.backlog: [-1, 0, 1, 2, 3, 4, 15, 16, 17, 100]
)");
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(10));
  EXPECT_EQ(plans[0].scenario.listeners[0].backlog, -1);
  EXPECT_EQ(plans[9].scenario.listeners[0].backlog, 100);
  EXPECT_EQ(Params(plans[6]), "listeners.l1.backlog=15");
}

}  // namespace
}  // namespace synq::controller
