// Proves that expectations parse (arithmetic, min/max/abs, and/or, comparisons), read the typed
// run result by field path (absent counters read 0, unset optional values are not_observed and
// never 0, params are the run's sweep values), report both sides of every comparison, and that
// `synq validate`'s check names the expectation, the bad path and what exists there.
#include "controller/verdict/expectations.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "controller/scenario_loader.h"
#include "controller/verdict/expression.h"
#include "controller/verdict/field_path.h"

namespace synq::controller::verdict {
namespace {

namespace v1 = ::synq::result::v1;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

constexpr char kScenario[] = R"(
name: expectations
hosts:
  server: {}
  client-1: {}
settings:
  server: { net.core.somaxconn: 16 }
listeners:
  - { name: l1, host: server, backlog: 4, accept: never }
floods:
  - { name: burst, host: client-1, target: l1, connections: 10 }
  - { name: prefill, host: client-1, target: l1, connections: 2 }
sweep:
  listeners.l1.backlog: [4, 8]
  listeners.l1.close_on_accept: [false, true]
  listeners.l1.accept: [never, immediate]
)";

// The scenario above with `expect:` lines appended.
Scenario WithExpectations(const std::vector<std::string>& lines) {
  std::string yaml = kScenario;
  yaml += "expect:\n";
  for (const std::string& line : lines) yaml += "  - \"" + line + "\"\n";
  LoadResult loaded = LoadScenario(yaml);
  EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
  return loaded.scenario;
}

std::vector<std::string> CheckErrors(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const ScenarioError& e : CheckExpectations(WithExpectations(lines))) {
    out.push_back(e.ToString());
  }
  return out;
}

// A run of the scenario above as the controller would build it: backlog 4 gives 5 established
// of 10, the rest timed out, overflows counted on the server.
v1::Run SampleRun() {
  v1::Run run;
  run.set_duration_ms(2500);
  (*run.mutable_params())["listeners.l1.backlog"].set_number_value(4);
  (*run.mutable_params())["listeners.l1.close_on_accept"].set_bool_value(true);
  (*run.mutable_params())["listeners.l1.accept"].set_string_value("never");
  v1::Listener& l1 = (*run.mutable_listeners())["l1"];
  l1.set_backlog(4);
  l1.set_backlog_effective(4);
  l1.set_accept_queue_peak(5);
  v1::Flood& burst = (*run.mutable_floods())["burst"];
  burst.set_attempted(10);
  burst.set_established(5);
  burst.set_timed_out(5);
  burst.mutable_connect_latency_ms()->set_p99(1.5);
  burst.mutable_fates()->set_queued(5);
  v1::Flood& prefill = (*run.mutable_floods())["prefill"];
  prefill.set_attempted(2);
  v1::Host& server = (*run.mutable_hosts())["server"];
  (*server.mutable_counters())["TcpExtListenOverflows"] = 7;
  (*server.mutable_settings())["net.core.somaxconn"] = 16;
  (*run.mutable_hosts())["client-1"].set_drop_events_unavailable("no drop_monitor");
  run.add_not_observed("start_skew_ms: no flood started");
  return run;
}

const v1::Expectation& EvaluateOne(const std::string& line, v1::Run* run) {
  EvaluateExpectations(WithExpectations({line}), run);
  EXPECT_EQ(run->expectations_size(), 1);
  return run->expectations(0);
}

TEST(Expression, FindsEveryPathOnceAndEachComparisonOfTheAndOrStructure) {
  absl::StatusOr<Expression> x = Expression::Parse(
      "(floods.burst.established == listeners.l1.backlog_effective + 1 or "
      "floods.burst.established > 3) && min(floods.burst.timed_out, 2) <= 2");
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_THAT(x->paths(), ElementsAre("floods.burst.established", "listeners.l1.backlog_effective",
                                      "floods.burst.timed_out"));
  ASSERT_EQ(x->comparisons().size(), 3u);
  EXPECT_EQ(x->comparisons()[0].left, "floods.burst.established");
  EXPECT_EQ(x->comparisons()[0].op, "==");
  EXPECT_EQ(x->comparisons()[0].right, "listeners.l1.backlog_effective + 1");
  EXPECT_EQ(x->comparisons()[1].op, ">");
  EXPECT_EQ(x->comparisons()[2].left, "min(floods.burst.timed_out, 2)");
  EXPECT_EQ(x->comparisons()[2].op, "<=");
}

TEST(Expectations, ArithmeticSidesAreEvaluatedAndBothValuesReported) {
  v1::Run run = SampleRun();
  const v1::Expectation& e =
      EvaluateOne("floods.burst.established == listeners.l1.backlog_effective + 1", &run);
  EXPECT_TRUE(e.passed()) << e.error();
  EXPECT_THAT(e.error(), IsEmpty());
  ASSERT_EQ(e.comparisons_size(), 1);
  EXPECT_EQ(e.comparisons(0).left(), "floods.burst.established");
  EXPECT_EQ(e.comparisons(0).right(), "listeners.l1.backlog_effective + 1");
  EXPECT_EQ(e.comparisons(0).left_value(), 5);
  EXPECT_EQ(e.comparisons(0).right_value(), 5);
  EXPECT_THAT(e.values(), UnorderedElementsAre(Pair("floods.burst.established", 5),
                                               Pair("listeners.l1.backlog_effective", 4)));
}

TEST(Expectations, PrecedenceOfMultiplicationAndDivision) {
  v1::Run run = SampleRun();
  // 10 - 5 * 2 / 5 = 8; (10 - 5) * 2 / 5 = 2.
  EXPECT_TRUE(
      EvaluateOne("floods.burst.attempted - floods.burst.established * 2 / 5 == 8", &run).passed());
  EXPECT_TRUE(EvaluateOne("(floods.burst.attempted - floods.burst.established) * 2 / 5 == 2", &run)
                  .passed());
  EXPECT_FALSE(EvaluateOne("floods.burst.attempted / 4 == 2", &run).passed());
  EXPECT_DOUBLE_EQ(EvaluateOne("floods.burst.attempted / 4 == 2", &run).comparisons(0).left_value(),
                   2.5);
}

TEST(Expectations, AndOrWordsAndSymbols) {
  v1::Run run = SampleRun();
  EXPECT_FALSE(
      EvaluateOne("floods.burst.established > 0 and floods.burst.reset > 0", &run).passed());
  EXPECT_FALSE(
      EvaluateOne("floods.burst.established > 0 && floods.burst.reset > 0", &run).passed());
  EXPECT_TRUE(EvaluateOne("floods.burst.established > 0 or floods.burst.reset > 0", &run).passed());
  EXPECT_TRUE(EvaluateOne("floods.burst.established > 0 || floods.burst.reset > 0", &run).passed());
  // and binds tighter than or: false or (true and true).
  const v1::Expectation& e = EvaluateOne(
      "floods.burst.reset > 0 or floods.burst.established == 5 and floods.burst.timed_out == 5",
      &run);
  EXPECT_TRUE(e.passed());
  ASSERT_EQ(e.comparisons_size(), 3);
  EXPECT_FALSE(e.comparisons(0).passed());
  EXPECT_TRUE(e.comparisons(1).passed());
  EXPECT_TRUE(e.comparisons(2).passed());
}

TEST(Expectations, MinMaxAbs) {
  v1::Run run = SampleRun();
  EXPECT_TRUE(EvaluateOne("min(floods.burst.established, 3, 9) == 3", &run).passed());
  EXPECT_TRUE(
      EvaluateOne("max(floods.burst.established, floods.prefill.attempted) == 5", &run).passed());
  const v1::Expectation& e =
      EvaluateOne("abs(floods.burst.established - floods.burst.attempted) == 5", &run);
  EXPECT_TRUE(e.passed());
  EXPECT_EQ(e.comparisons(0).left_value(), 5);
}

TEST(Expectations, ComparisonOperators) {
  v1::Run run = SampleRun();
  EXPECT_TRUE(EvaluateOne("floods.burst.established != 4", &run).passed());
  EXPECT_FALSE(EvaluateOne("floods.burst.established != 5", &run).passed());
  EXPECT_TRUE(EvaluateOne("floods.burst.established <= 5", &run).passed());
  EXPECT_FALSE(EvaluateOne("floods.burst.established < 5", &run).passed());
  EXPECT_TRUE(EvaluateOne("floods.burst.established >= 5", &run).passed());
  EXPECT_FALSE(EvaluateOne("floods.burst.established > 5", &run).passed());
  EXPECT_TRUE(EvaluateOne("floods.burst.connect_latency_ms.p99 < 1500", &run).passed());
}

TEST(Expectations, NumberFormsAndUnaryMinus) {
  v1::Run run = SampleRun();
  EXPECT_TRUE(EvaluateOne("floods.burst.established > -1", &run).passed());
  EXPECT_TRUE(EvaluateOne("floods.burst.established * 2 == 1e1", &run).passed());
  EXPECT_TRUE(EvaluateOne("floods.burst.established * .5 == 2.5", &run).passed());
  EXPECT_TRUE(EvaluateOne("-floods.burst.established == -5", &run).passed());
}

TEST(Expectations, ParamsAreTheRunsSweepValuesWithBoolsAsOneAndZero) {
  v1::Run run = SampleRun();
  const v1::Expectation& e =
      EvaluateOne("params.listeners.l1.backlog + params.listeners.l1.close_on_accept == 5", &run);
  EXPECT_TRUE(e.passed()) << e.error();
  EXPECT_THAT(e.values(), UnorderedElementsAre(Pair("params.listeners.l1.backlog", 4),
                                               Pair("params.listeners.l1.close_on_accept", 1)));
}

TEST(Expectations, CountersAndErrnosThatDidNotMoveReadZero) {
  v1::Run run = SampleRun();
  const v1::Expectation& e = EvaluateOne(
      "hosts.server.counters.TcpExtListenDrops + floods.burst.errors.EADDRNOTAVAIL == 0 and "
      "hosts.server.counters.TcpExtListenOverflows == 7",
      &run);
  EXPECT_TRUE(e.passed()) << e.error();
  EXPECT_THAT(e.values(),
              UnorderedElementsAre(Pair("hosts.server.counters.TcpExtListenDrops", 0),
                                   Pair("floods.burst.errors.EADDRNOTAVAIL", 0),
                                   Pair("hosts.server.counters.TcpExtListenOverflows", 7)));
}

TEST(Expectations, SettingsKeysWithDotsAndHostNamesWithDashes) {
  v1::Run run = SampleRun();
  EXPECT_TRUE(EvaluateOne("hosts.server.settings.net.core.somaxconn == 16", &run).passed());
  (*(*run.mutable_hosts())["client-1"].mutable_counters())["TcpExtTCPSynRetrans"] = 3;
  // '-' inside a host name is part of the path; elsewhere it subtracts.
  const v1::Expectation& e =
      EvaluateOne("hosts.client-1.counters.TcpExtTCPSynRetrans-1 == 2", &run);
  EXPECT_TRUE(e.passed()) << e.error();
}

TEST(Expectations, UnsetOptionalValueIsNotObservedNeverZero) {
  v1::Run run = SampleRun();
  const v1::Expectation& e = EvaluateOne("start_skew_ms < 100", &run);
  EXPECT_FALSE(e.passed());
  EXPECT_EQ(e.error(), "start_skew_ms: not_observed (no flood started)");
  EXPECT_THAT(e.comparisons(), IsEmpty());
  EXPECT_THAT(e.values(), IsEmpty());
  run.set_start_skew_ms(3);
  EXPECT_TRUE(EvaluateOne("start_skew_ms < 100", &run).passed());
}

TEST(Expectations, DropEventsOfAHostThatCouldNotObserveThemAreNotObserved) {
  v1::Run run = SampleRun();
  const v1::Expectation& e = EvaluateOne("hosts.client-1.drop_events.tcp_drop == 0", &run);
  EXPECT_FALSE(e.passed());
  EXPECT_THAT(e.error(), HasSubstr("not_observed (no drop_monitor)"));
  // The server could observe them: an event that did not happen reads 0.
  EXPECT_TRUE(EvaluateOne("hosts.server.drop_events.tcp_drop == 0", &run).passed());
}

TEST(Expectations, AbsentSettingIsNotObserved) {
  v1::Run run = SampleRun();
  const v1::Expectation& e =
      EvaluateOne("hosts.server.settings.net.ipv4.tcp_syncookies == 1", &run);
  EXPECT_FALSE(e.passed());
  EXPECT_THAT(e.error(), HasSubstr("not_observed"));
}

TEST(Expectations, FloodMissingFromAFailedRunIsAnError) {
  v1::Run run = SampleRun();
  run.mutable_floods()->erase("prefill");
  const v1::Expectation& e = EvaluateOne("floods.prefill.established == 0", &run);
  EXPECT_FALSE(e.passed());
  EXPECT_EQ(e.error(), "floods.prefill.established: no flood 'prefill' in this run's result");
}

TEST(Expectations, DivisionByZeroIsAnErrorNotAPass) {
  v1::Run run = SampleRun();
  const v1::Expectation& e = EvaluateOne("floods.burst.established / floods.burst.reset > 0", &run);
  EXPECT_FALSE(e.passed());
  EXPECT_THAT(e.error(), HasSubstr("division by zero"));
  EXPECT_THAT(e.error(), HasSubstr("floods.burst.established / floods.burst.reset"));
}

TEST(Expectations, TextParamIsAnEvaluationError) {
  v1::Run run = SampleRun();
  const v1::Expectation& e = EvaluateOne("params.listeners.l1.accept == 1", &run);
  EXPECT_FALSE(e.passed());
  EXPECT_THAT(e.error(), HasSubstr("'never', not a number"));
}

TEST(Expectations, EvaluatingReplacesEarlierResults) {
  v1::Run run = SampleRun();
  EvaluateExpectations(WithExpectations({"floods.burst.established == 5", "duration_ms > 0"}),
                       &run);
  EvaluateExpectations(WithExpectations({"floods.burst.established == 5", "duration_ms > 0"}),
                       &run);
  EXPECT_EQ(run.expectations_size(), 2);
}

TEST(RenderExpectations, OneLinePerExpectationWithBothValues) {
  v1::Run run = SampleRun();
  EvaluateExpectations(
      WithExpectations({"floods.burst.established == listeners.l1.backlog_effective",
                        "floods.burst.attempted / 4 >= 2", "start_skew_ms < 10"}),
      &run);
  EXPECT_EQ(RenderExpectations(run),
            "FAIL  floods.burst.established == listeners.l1.backlog_effective   (5 == 4)\n"
            "PASS  floods.burst.attempted / 4 >= 2                              (2.5 >= 2)\n"
            "FAIL  start_skew_ms < 10                                           "
            "error: start_skew_ms: not_observed (no flood started)\n");
  v1::Result result;
  *result.add_runs() = run;
  EXPECT_FALSE(ExpectationsPassed(result));
  result.mutable_runs(0)->clear_expectations();
  EXPECT_TRUE(ExpectationsPassed(result));
}

TEST(CheckExpectations, ValidPathsOfEveryKindPass) {
  EXPECT_THAT(CheckErrors({
                  "floods.burst.established == listeners.l1.backlog_effective + 1",
                  "hosts.server.counters.TcpExtListenOverflows > 0",
                  "floods.burst.connect_latency_ms.p99 < 1500",
                  "floods.burst.fates.unknown_to_server == 0",
                  "hosts.server.settings.net.core.somaxconn == 16",
                  "hosts.client-1.drop_events.tcp_drop >= 0 or floods.burst.errors.EMFILE == 0",
                  "start_skew_ms < 10 and start_lateness_ms < 10 and duration_ms > 0",
                  "params.listeners.l1.backlog + params.listeners.l1.close_on_accept > 0",
                  "floods.burst.connect_latency_histogram.buckets.17 >= 0",
              }),
              IsEmpty());
}

TEST(CheckExpectations, UnknownFloodNamesTheFloodsThatExist) {
  EXPECT_THAT(CheckErrors({"floods.burst.established > 0", "floods.f2.established == 5"}),
              ElementsAre("expect[1]: floods.f2.established: no flood named 'f2' (floods: burst, "
                          "prefill); expression: floods.f2.established == 5"));
}

TEST(CheckExpectations, UnknownListenerAndHost) {
  EXPECT_THAT(CheckErrors({"listeners.l2.accepted == 0 and hosts.client.counters.X == 0"}),
              ElementsAre(HasSubstr("listeners.l2.accepted: no listener named 'l2' (listeners: "
                                    "l1)"),
                          HasSubstr("hosts.client.counters.X: no host named 'client' (hosts: "
                                    "server, client-1)")));
}

TEST(CheckExpectations, UnknownFieldListsTheFieldsOfAFlood) {
  const std::vector<std::string> errors = CheckErrors({"floods.burst.latency < 5"});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], HasSubstr("expect[0]: floods.burst.latency: no field 'latency' in a "
                                   "flood (fields: attempted, established, reset, refused, "
                                   "timed_out, errors, connect_latency_ms, fates,"));
  EXPECT_THAT(errors[0], HasSubstr("; expression: floods.burst.latency < 5"));
  EXPECT_THAT(CheckErrors({"floods.burst.connect_latency_ms.p98 < 5"}),
              ElementsAre(HasSubstr("no field 'p98' in floods.burst.connect_latency_ms (fields: "
                                    "p50, p90, p99, max, count)")));
  EXPECT_THAT(
      CheckErrors({"latency < 5"}),
      ElementsAre(HasSubstr("latency: no field 'latency' in a run (fields: index, params, "
                            "start_skew_ms, start_lateness_ms, listeners, floods, hosts,")));
}

TEST(CheckExpectations, PathEndingAtAMessageListsItsNumbers) {
  EXPECT_THAT(CheckErrors({"floods.burst.connect_latency_ms > 5"}),
              ElementsAre(HasSubstr("floods.burst.connect_latency_ms: "
                                    "floods.burst.connect_latency_ms is a latency summary, not a "
                                    "number; numbers in it: p50, p90, p99, max, count")));
  EXPECT_THAT(CheckErrors({"floods.burst == 5"}),
              ElementsAre(HasSubstr("floods.burst is a flood, not a number; numbers in it: "
                                    "attempted, established, reset, refused, timed_out, "
                                    "errors.<key>, connect_latency_ms.<field>, fates.<field>")));
  EXPECT_THAT(CheckErrors({"hosts.server.counters == 0"}),
              ElementsAre(HasSubstr("hosts.server.counters is a map, not a number; name an "
                                    "entry: hosts.server.counters.<key>")));
}

TEST(CheckExpectations, TextListsAndNumbersWithSubfieldsAreTypeErrors) {
  EXPECT_THAT(CheckErrors({"floods.burst.host == 1"}),
              ElementsAre(HasSubstr("'host' in a flood is text, not a number")));
  EXPECT_THAT(CheckErrors({"floods.burst.reset_after_ms > 1"}),
              ElementsAre(HasSubstr("'reset_after_ms' in a flood is a list, not a number")));
  EXPECT_THAT(CheckErrors({"floods.burst.established.p99 > 1"}),
              ElementsAre(HasSubstr("floods.burst.established is a number; it has no field "
                                    "'p99'")));
}

TEST(CheckExpectations, ParamsMustBeANumericSweepAxis) {
  EXPECT_THAT(CheckErrors({"params.listeners.l1.port == 1"}),
              ElementsAre("expect[0]: params.listeners.l1.port: no sweep axis "
                          "'listeners.l1.port' (sweep: listeners.l1.backlog, "
                          "listeners.l1.close_on_accept, listeners.l1.accept); expression: "
                          "params.listeners.l1.port == 1"));
  EXPECT_THAT(CheckErrors({"params.listeners.l1.accept == 1"}),
              ElementsAre(HasSubstr("params.listeners.l1.accept: the sweep gives it the text "
                                    "'never', not a number")));
}

TEST(CheckExpectations, ParamsWithoutASweep) {
  LoadResult loaded = LoadScenario(R"(
name: no-sweep
listeners: [{ name: l1, host: local }]
expect: ["params.listeners.l1.backlog == 4"]
)");
  ASSERT_TRUE(loaded.ok());
  const std::vector<ScenarioError> errors = CheckExpectations(loaded.scenario);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("(the scenario has no sweep)"));
}

TEST(CheckExpectations, SyntaxErrorsNameThePosition) {
  EXPECT_THAT(CheckErrors({"floods.burst.established == "}),
              ElementsAre(AllOf(StartsWith("expect[0]: syntax error: Unexpected end of expression"),
                                EndsWith("; expression: floods.burst.established == "))));
  EXPECT_THAT(CheckErrors({"(floods.burst.established == 5"}),
              ElementsAre(HasSubstr("syntax error: Missing parenthesis")));
  // The variable muParser saw is named by its path.
  EXPECT_THAT(CheckErrors({"floods.burst.established floods.burst.reset == 5"}),
              ElementsAre(HasSubstr("syntax error: Unexpected variable \"floods.burst.reset\" "
                                    "found at position 25")));
  EXPECT_THAT(CheckErrors({"floods.burst.established = 5"}),
              ElementsAre(HasSubstr("'=' compares nothing: write '==' at position 25")));
  EXPECT_THAT(CheckErrors({"floods.burst.established ^ 2 > 5"}),
              ElementsAre(HasSubstr("unexpected '^' at position 25")));
  EXPECT_THAT(CheckErrors({"sqrt(floods.burst.established) > 5"}),
              ElementsAre(HasSubstr("unknown function 'sqrt' (functions: abs, max, min) at "
                                    "position 0")));
}

TEST(CheckExpectations, EveryAndOrOperandIsAComparison) {
  EXPECT_THAT(CheckErrors({"floods.burst.established + 1"}),
              ElementsAre(HasSubstr("'floods.burst.established + 1' is not a comparison")));
  EXPECT_THAT(CheckErrors({"floods.burst.established > 0 and floods.burst.reset"}),
              ElementsAre(HasSubstr("'floods.burst.reset' is not a comparison")));
  EXPECT_THAT(CheckErrors({"0 < floods.burst.established < 10"}),
              ElementsAre(HasSubstr("chains comparisons: join them with 'and'")));
}

TEST(FieldPath, ReadsEveryKindOfNumber) {
  v1::Run run = SampleRun();
  EXPECT_EQ(*ReadFieldPath(run, "listeners.l1.accept_queue_peak"), 5);
  EXPECT_EQ(*ReadFieldPath(run, "floods.burst.fates.queued"), 5);
  EXPECT_EQ(*ReadFieldPath(run, "floods.burst.server_observed"), 0);
  EXPECT_EQ(*ReadFieldPath(run, "duration_ms"), 2500);
  EXPECT_EQ(ReadFieldPath(run, "start_lateness_ms").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace synq::controller::verdict
