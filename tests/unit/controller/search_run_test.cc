// Proves how one sweep point's knee search turns trial runs into the result: each trial's plan
// sets only the searched flood's rate and connections; each trial is judged from its run (client
// failures, never-launched attempts, the target host's listen drops); the point's run is the
// knee trial's, with every trial, the knee, the model's prediction and its error; a trial whose
// run failed ends the search and its errors stay in the result. The trial runner here is a fake
// server that follows the fluid queue exactly (drops = (lambda - mu) T - K when positive).
#include "controller/search/search_run.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "controller/run/progress.h"
#include "controller/scenario_loader.h"
#include "controller/search/trial.h"

namespace synq::controller::search {
namespace {

namespace rv1 = ::synq::result::v1;
using ::testing::HasSubstr;

constexpr char kScenario[] = R"(
name: s
hosts: { server: {}, client: {} }
listeners: [{ name: l1, host: server, backlog: 32, accept: paced, accept_interval: 10ms }]
floods: [{ name: f1, host: client, target: l1, concurrency: 500, hold: 0s }]
search: { flood: f1, trial: 1s, start: 100, max: 1000, precision: 8 }
)";

RunPlan Plan(const std::string& yaml = kScenario) {
  LoadResult r = LoadScenario(yaml);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.errors[0].ToString());
  return RunPlan{r.scenario, {}};
}

// The run a server following the fluid model would give: mu = 100/s, K = 33, T = 1 s.
rv1::Run FluidRun(const RunPlan& plan, bool with_server_counters = true) {
  const FloodDef& f = plan.scenario.floods.front();
  const double drops = std::max(0.0, static_cast<double>(f.connections) - 100 - 33);
  rv1::Run run;
  rv1::Flood& flood = (*run.mutable_floods())["f1"];
  flood.set_rate(f.rate);
  flood.set_attempted(static_cast<uint32_t>(f.connections));
  flood.set_timed_out(static_cast<uint32_t>(drops));
  flood.set_established(static_cast<uint32_t>(f.connections - drops));
  flood.set_listener("l1");
  rv1::Listener& l = (*run.mutable_listeners())["l1"];
  l.set_host("server");
  l.set_accept(rv1::ACCEPT_MODE_PACED);
  l.set_accept_interval_ms(10);
  l.set_backlog(32);
  l.set_backlog_effective(32);
  rv1::Host& h = (*run.mutable_hosts())["server"];
  if (with_server_counters) {
    (*h.mutable_counters())["TcpExtListenOverflows"] = drops;
    (*h.mutable_counters())["TcpExtListenDrops"] = drops;
  }
  run.set_duration_ms(1500);
  return run;
}

TEST(SearchRun, TrialPlanSetsAConstantRateForTheTrialWindow) {
  const RunPlan point = Plan();
  auto plan = TrialPlan(point, *point.scenario.search, 250);
  ASSERT_TRUE(plan.ok());
  const FloodDef& f = plan->scenario.floods.front();
  EXPECT_EQ(f.rate, 250);
  EXPECT_EQ(f.connections, 250);  // 250/s for 1 s
  EXPECT_EQ(f.duration, point.scenario.search->trial);
  EXPECT_EQ(f.rate_kind, RateKind::kConstant);
  EXPECT_EQ(f.concurrency, 500);
  EXPECT_EQ(f.hold, std::chrono::nanoseconds(0));
  EXPECT_EQ(TrialConnections(0.4, std::chrono::seconds(1)), 1);  // at least one attempt
  EXPECT_EQ(TrialConnections(333, std::chrono::milliseconds(1500)), 500);
}

TEST(SearchRun, KneeOfAFluidServerMatchesTheModel) {
  const RunPlan point = Plan();
  int trials = 0;
  const rv1::Run run = RunSearch(point, [&](const RunPlan& plan) {
    ++trials;
    return FluidRun(plan);
  });
  ASSERT_TRUE(run.has_search());
  const rv1::Search& s = run.search();
  // The fluid server passes up to 133/s exactly; the search brackets it within 8/s.
  ASSERT_TRUE(s.has_knee_rate());
  EXPECT_LE(s.knee_rate(), 133);
  EXPECT_GT(s.knee_rate(), 133 - 8);
  EXPECT_EQ(s.trials_size(), trials);
  EXPECT_EQ(s.criterion(), "ndr");
  EXPECT_EQ(s.trial_ms(), 1000);
  EXPECT_EQ(s.precision(), 8);
  // The point's run is the knee trial's.
  EXPECT_EQ(run.floods().at("f1").rate(), s.knee_rate());
  ASSERT_TRUE(s.model().has_predicted_rate());
  EXPECT_DOUBLE_EQ(s.model().predicted_rate(), 133);
  EXPECT_DOUBLE_EQ(s.model().error_percent(), (s.knee_rate() - 133) / 133 * 100);
  // The 200/s doubling trial lost 200 - 100 - 33 = 67, seen on both sides.
  const rv1::SearchTrial& second = s.trials(1);
  EXPECT_EQ(second.rate(), 200);
  EXPECT_FALSE(second.passed());
  EXPECT_EQ(second.phase(), "doubling");
  EXPECT_EQ(second.timed_out(), 67u);
  EXPECT_EQ(second.server_drops(), 67);
  EXPECT_DOUBLE_EQ(second.loss_percent(), 33.5);
  EXPECT_THAT(second.reason(), HasSubstr("server drops 67"));
  EXPECT_TRUE(s.note().empty()) << s.note();
}

TEST(SearchRun, ServerDropsAloneFailNdr) {
  const RunPlan point = Plan();
  rv1::Run run = FluidRun(*TrialPlan(point, *point.scenario.search, 100));
  (*(*run.mutable_hosts())["server"].mutable_counters())["TcpExtListenOverflows"] = 2;
  (*(*run.mutable_hosts())["server"].mutable_counters())["TcpExtListenDrops"] = 2;
  const rv1::SearchTrial t = JudgeTrial(run, *point.scenario.search, 100, "bisect");
  EXPECT_FALSE(t.passed());
  EXPECT_EQ(t.reason(), "server drops 2");
  EXPECT_DOUBLE_EQ(t.loss_percent(), 2);
}

TEST(SearchRun, PdrPassesWithinItsLoss) {
  const std::string yaml =
      std::string(kScenario).replace(std::string(kScenario).find("precision: 8 }"), 14,
                                     "precision: 8, criterion: pdr, loss: 5% }");
  const RunPlan point = Plan(yaml);
  const SearchDef& def = *point.scenario.search;
  // 140/s: 7 drops of 140 = 5%, within; 141/s: 8 of 141 = 5.7%, over.
  EXPECT_TRUE(JudgeTrial(FluidRun(*TrialPlan(point, def, 140)), def, 140, "bisect").passed());
  EXPECT_FALSE(JudgeTrial(FluidRun(*TrialPlan(point, def, 141)), def, 141, "bisect").passed());
  const rv1::Run run = RunSearch(point, [](const RunPlan& plan) { return FluidRun(plan); });
  EXPECT_DOUBLE_EQ(run.search().model().predicted_rate(), 133 / 0.95);
  EXPECT_EQ(run.search().loss_percent(), 5);
}

TEST(SearchRun, NeverLaunchedAttemptsAreLosses) {
  const RunPlan point = Plan();
  rv1::Run run = FluidRun(*TrialPlan(point, *point.scenario.search, 100));
  run.mutable_floods()->at("f1").set_attempted(97);
  run.mutable_floods()->at("f1").set_established(97);
  const rv1::SearchTrial t = JudgeTrial(run, *point.scenario.search, 100, "doubling");
  EXPECT_FALSE(t.passed());
  EXPECT_THAT(t.reason(), HasSubstr("never launched 3"));
}

TEST(SearchRun, WithoutServerCountersTheDropsAreAbsentAndNoted) {
  const RunPlan point = Plan();
  const rv1::Run run = RunSearch(point, [](const RunPlan& plan) { return FluidRun(plan, false); });
  for (const auto& t : run.search().trials()) EXPECT_FALSE(t.has_server_drops());
  EXPECT_THAT(run.search().note(), HasSubstr("server drops not observed"));
}

TEST(SearchRun, AFailedTrialRunEndsTheSearchAndKeepsItsErrors) {
  const RunPlan point = Plan();
  const rv1::Run run = RunSearch(point, [](const RunPlan& plan) {
    rv1::Run r = FluidRun(plan);
    if (plan.scenario.floods.front().rate >= 200) r.add_errors("server: agent vanished");
    return r;
  });
  const rv1::Search& s = run.search();
  EXPECT_EQ(s.trials_size(), 2);
  EXPECT_EQ(s.knee_rate(), 100);
  EXPECT_THAT(s.note(), HasSubstr("could not run"));
  ASSERT_EQ(run.errors_size(), 1);
  EXPECT_EQ(run.errors(0), "search trial at 200/s: server: agent vanished");
  EXPECT_THAT(s.trials(1).reason(), HasSubstr("the run failed"));
}

TEST(SearchRun, ProgressLineNamesTheKneeAndTheTrials) {
  const rv1::Run run = RunSearch(Plan(), [](const RunPlan& plan) { return FluidRun(plan); });
  const std::string line = Progress::RunLine(0, 4, "listeners.l1.backlog=32", run);
  EXPECT_THAT(line, HasSubstr("synq: run 1/4 listeners.l1.backlog=32 search done in "));
  EXPECT_THAT(line, HasSubstr(absl::StrCat(": knee ", run.search().knee_rate(), "/s in ",
                                           run.search().trials_size(), " trials")));
}

}  // namespace
}  // namespace synq::controller::search
