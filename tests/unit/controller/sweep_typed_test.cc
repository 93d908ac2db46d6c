// Proves that a sweep value is typed once from its YAML scalar and kept typed (int, double, bool,
// string) through expansion into each run's params and into google.protobuf.Value, and that a
// sweep path is resolved once by the loader: ExpandSweep stores the field values the loader
// checked, through the target the loader resolved, without resolving the path again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "controller/scenario/sweep_value_proto.h"
#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

Scenario LoadOk(const std::string& yaml) {
  LoadResult result = LoadScenario(yaml);
  std::vector<std::string> errors;
  for (const ScenarioError& e : result.errors) errors.push_back(e.ToString());
  EXPECT_THAT(errors, IsEmpty()) << yaml;
  return result.scenario;
}

std::vector<RunPlan> ExpandOk(const Scenario& s) {
  absl::StatusOr<std::vector<RunPlan>> plans = ExpandSweep(s);
  EXPECT_TRUE(plans.ok()) << plans.status();
  return plans.ok() ? *std::move(plans) : std::vector<RunPlan>{};
}

TEST(SweepValue, UnquotedScalarsAreTypedIntThenBoolThenNumberElseString) {
  EXPECT_EQ(SweepValue::FromYaml("1", false), SweepValue::Int(1));
  EXPECT_EQ(SweepValue::FromYaml("-1", false), SweepValue::Int(-1));
  EXPECT_EQ(SweepValue::FromYaml("1.5", false), SweepValue::Double(1.5));
  EXPECT_EQ(SweepValue::FromYaml("1e3", false), SweepValue::Double(1000));
  EXPECT_EQ(SweepValue::FromYaml("true", false), SweepValue::Bool(true));
  EXPECT_EQ(SweepValue::FromYaml("False", false), SweepValue::Bool(false));
  EXPECT_EQ(SweepValue::FromYaml("10ms", false), SweepValue::String("10ms"));
  EXPECT_EQ(SweepValue::FromYaml("inf", false), SweepValue::String("inf"));
}

TEST(SweepValue, QuotedScalarIsAStringWhateverItLooksLike) {
  EXPECT_EQ(SweepValue::FromYaml("1", true), SweepValue::String("1"));
  EXPECT_EQ(SweepValue::FromYaml("true", true), SweepValue::String("true"));
  EXPECT_EQ(SweepValue::FromYaml("1", true).kind(), SweepValue::Kind::kString);
}

TEST(SweepValue, TextIsTheDisplayFormAndDescribeQuotesStrings) {
  EXPECT_EQ(SweepValue::Int(-4).Text(), "-4");
  EXPECT_EQ(SweepValue::Double(2.5).Text(), "2.5");
  // Shortest text that reads back as the same double (not printf's six digits).
  EXPECT_EQ(SweepValue::Double(0.1234567).Text(), "0.1234567");
  EXPECT_EQ(SweepValue::Bool(true).Text(), "true");
  EXPECT_EQ(SweepValue::String("paced").Text(), "paced");
  EXPECT_EQ(SweepValue::String("paced").Describe(), "'paced'");
  EXPECT_EQ(SweepValue::Int(4).Describe(), "4");
  EXPECT_EQ(SweepValue().Text(), "");  // default: the empty string
}

TEST(SweepValue, NumbersReadAsNumbersAndOthersDoNot) {
  EXPECT_TRUE(SweepValue::Int(3).is_number());
  EXPECT_EQ(SweepValue::Int(3).AsNumber(), 3.0);
  EXPECT_TRUE(SweepValue::Double(0.5).is_number());
  EXPECT_EQ(SweepValue::Double(0.5).AsNumber(), 0.5);
  EXPECT_FALSE(SweepValue::Bool(true).is_number());
  EXPECT_FALSE(SweepValue::String("3").is_number());
}

TEST(SweepValue, ProtoValueKeepsTheType) {
  google::protobuf::Value v = SweepValueToProto(SweepValue::Int(-1));
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kNumberValue);
  EXPECT_EQ(v.number_value(), -1.0);
  v = SweepValueToProto(SweepValue::Double(0.5));
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kNumberValue);
  EXPECT_EQ(v.number_value(), 0.5);
  v = SweepValueToProto(SweepValue::Bool(false));
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kBoolValue);
  EXPECT_FALSE(v.bool_value());
  v = SweepValueToProto(SweepValue::String("1"));
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kStringValue);
  EXPECT_EQ(v.string_value(), "1");
}

TEST(SweepTyped, LoaderTypesEachValueOnceFromTheFile) {
  // payload takes any scalar, so one axis can carry all four types.
  const Scenario s = LoadOk(R"(
name: typed
listeners: [{ name: l1 }]
floods: [{ name: f1, target: l1 }]
sweep:
  floods.f1.payload: [1, 1.5, true, "1"]
)");
  ASSERT_THAT(s.sweep, SizeIs(1));
  const std::vector<SweepValue>& values = s.sweep[0].values;
  ASSERT_THAT(values, SizeIs(4));
  EXPECT_EQ(std::get<int64_t>(values[0].value()), 1);
  EXPECT_EQ(std::get<double>(values[1].value()), 1.5);
  EXPECT_EQ(std::get<bool>(values[2].value()), true);
  EXPECT_EQ(std::get<std::string>(values[3].value()), "1");
}

TEST(SweepTyped, ExpandedPlansCarryTypedParamsMatchingTheirScenario) {
  const Scenario s = LoadOk(R"(
name: typed
listeners: [{ name: l1 }]
floods: [{ name: f1, target: l1 }]
sweep:
  listeners.l1.backlog: [-1, 16]
  floods.f1.rate: [2.5]
  listeners.l1.close_on_accept: [true]
  listeners.l1.accept: [immediate]
)");
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(2));
  for (const RunPlan& plan : plans) {
    ASSERT_THAT(plan.params, SizeIs(4));
    EXPECT_EQ(plan.params[0].first, "listeners.l1.backlog");
    EXPECT_EQ(std::get<int64_t>(plan.params[0].second.value()), plan.scenario.listeners[0].backlog);
    EXPECT_EQ(std::get<double>(plan.params[1].second.value()), plan.scenario.floods[0].rate);
    EXPECT_EQ(std::get<bool>(plan.params[2].second.value()),
              plan.scenario.listeners[0].close_on_accept);
    EXPECT_EQ(std::get<std::string>(plan.params[3].second.value()), "immediate");
    EXPECT_EQ(plan.scenario.listeners[0].accept, AcceptMode::kImmediate);
  }
  EXPECT_EQ(plans[0].scenario.listeners[0].backlog, -1);
  EXPECT_EQ(plans[1].scenario.listeners[0].backlog, 16);
}

TEST(SweepTyped, LoaderResolvesEachPathIntoAFieldAndChecksEachValueForIt) {
  const Scenario s = LoadOk(R"(
name: typed
hosts: {server: {}, client: {}}
listeners: [{ name: a, host: server }, { name: b, host: server }]
sweep:
  listeners.b.accept_interval: [10ms, 1.5s]
  settings.server.net.core.somaxconn: [16]
  sample_interval: [50ms]
)");
  ASSERT_THAT(s.sweep, SizeIs(3));
  for (const SweepAxis& axis : s.sweep) EXPECT_TRUE(axis.resolved()) << axis.path;
  // "b" is the second listener: the target holds its index, not its name.
  EXPECT_EQ(s.sweep[0].target.ref, (FieldRef{FieldRef::Kind::kListener, 1, "", "accept_interval"}));
  EXPECT_THAT(s.sweep[0].field_values,
              ElementsAre(scenario::FieldValue(nanoseconds(milliseconds(10))),
                          scenario::FieldValue(nanoseconds(milliseconds(1500)))));
  EXPECT_EQ(s.sweep[1].target.ref,
            (FieldRef{FieldRef::Kind::kSetting, 0, "server", "net.core.somaxconn"}));
  EXPECT_THAT(s.sweep[1].field_values,
              ElementsAre(scenario::FieldValue(std::in_place_type<int64_t>, 16)));
  EXPECT_EQ(s.sweep[2].target.ref.kind, FieldRef::Kind::kSampleInterval);
}

TEST(SweepTyped, ExpandSweepUsesTheTargetResolvedAtLoadNotThePath) {
  Scenario s = LoadOk(R"(
name: typed
listeners: [{ name: l1 }]
sweep:
  listeners.l1.backlog: [7]
)");
  // After loading, the path "listeners.l1.backlog" no longer names anything. A sweep that
  // resolved the path again would fail; the resolved target still points at listener 0.
  s.listeners[0].name = "renamed";
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(1));
  EXPECT_EQ(plans[0].scenario.listeners[0].backlog, 7);
}

TEST(SweepTyped, ExpandSweepStoresTheCheckedFieldValueWithoutParsingAgain) {
  Scenario s = LoadOk(R"(
name: typed
listeners: [{ name: l1 }]
sweep:
  listeners.l1.backlog: [7]
)");
  // What a run stores comes from field_values (checked once at load), not from the text "7".
  s.sweep[0].field_values[0] = scenario::FieldValue(std::in_place_type<int64_t>, 9);
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(1));
  EXPECT_EQ(plans[0].scenario.listeners[0].backlog, 9);
}

TEST(SweepTyped, TargetAppliedToAScenarioWithoutItsItemIsAnError) {
  Scenario s = LoadOk(R"(
name: typed
listeners: [{ name: l1 }]
sweep:
  listeners.l1.backlog: [7]
)");
  s.listeners.clear();
  absl::StatusOr<std::vector<RunPlan>> plans = ExpandSweep(s);
  ASSERT_FALSE(plans.ok());
  EXPECT_THAT(std::string(plans.status().message()),
              HasSubstr("sweep.listeners.l1.backlog: item 0 does not exist"));
}

TEST(SweepTyped, MakeSweepAxisBuildsAnAxisExpandSweepAccepts) {
  Scenario s = LoadOk(R"(
name: typed
listeners: [{ name: l1 }]
)");
  absl::StatusOr<SweepAxis> axis = MakeSweepAxis(
      s, "listeners.l1.accept", {SweepValue::String("never"), SweepValue::String("immediate")});
  ASSERT_TRUE(axis.ok()) << axis.status();
  s.sweep.push_back(*std::move(axis));
  const std::vector<RunPlan> plans = ExpandOk(s);
  ASSERT_THAT(plans, SizeIs(2));
  EXPECT_EQ(plans[0].scenario.listeners[0].accept, AcceptMode::kNever);
  EXPECT_EQ(plans[1].scenario.listeners[0].accept, AcceptMode::kImmediate);
  EXPECT_EQ(plans[1].params[0].second, SweepValue::String("immediate"));
}

}  // namespace
}  // namespace synq::controller
