// Proves the baseline comparison's contract on results built field by field: runs match by equal
// typed params (unmatched runs are noted, not failed, unless none match); a relative change
// beyond tolerance fails in either direction; a baseline of 0 fails on any change; the most
// specific tolerance pattern wins and the command line overrides the scenario; flag errors name
// the flag and the reason; `synq compare` text shows kernels and settings side by side and every
// regression with both values and its tolerance.
#include "controller/verdict/baseline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "google/protobuf/struct.pb.h"

namespace synq::controller::verdict {
namespace {

namespace v1 = ::synq::result::v1;
using ::testing::HasSubstr;
using ::testing::Not;

google::protobuf::Value Number(double v) {
  google::protobuf::Value value;
  value.set_number_value(v);
  return value;
}

google::protobuf::Value Text(const std::string& v) {
  google::protobuf::Value value;
  value.set_string_value(v);
  return value;
}

// A run of the somaxconn-cap shape: a never-accepting listener holding backlog + 1.
v1::Run MakeRun(int index, int backlog_effective, int attempted = 20) {
  v1::Run run;
  run.set_index(index);
  v1::Listener& l = (*run.mutable_listeners())["l1"];
  l.set_backlog(100);
  l.set_backlog_effective(backlog_effective);
  l.set_accept_queue_peak(backlog_effective + 1);
  v1::Flood& f = (*run.mutable_floods())["f1"];
  f.set_attempted(attempted);
  f.set_established(backlog_effective + 1);
  f.set_timed_out(attempted - (backlog_effective + 1));
  // The server side was observed: every joined fate is a measured count, zeros included.
  f.set_server_observed(true);
  f.mutable_fates()->set_accepted(0);
  f.mutable_fates()->set_syn_recv(0);
  f.mutable_fates()->set_unknown_to_server(0);
  f.mutable_fates()->set_queued(backlog_effective + 1);
  f.mutable_fates()->set_timed_out(attempted - (backlog_effective + 1));
  f.mutable_connect_latency_ms()->set_p50(0.2);
  f.mutable_connect_latency_ms()->set_p99(0.4);
  f.mutable_connect_latency_ms()->set_max(0.5);
  v1::Host& server = (*run.mutable_hosts())["server"];
  server.set_kernel("6.1.0-18-amd64");
  (*server.mutable_settings())["net.core.somaxconn"] = backlog_effective;
  (*server.mutable_settings())["net.ipv4.tcp_syncookies"] = 1;
  (*server.mutable_counters())["TcpExtListenOverflows"] = attempted - (backlog_effective + 1);
  (*server.mutable_counters())["TcpExtListenDrops"] = attempted - (backlog_effective + 1);
  v1::Host& client = (*run.mutable_hosts())["client"];
  client.set_kernel("6.1.0-18-amd64");
  return run;
}

v1::Result MakeResult(std::vector<v1::Run> runs) {
  v1::Result r;
  r.set_scenario("somaxconn-cap");
  for (auto& run : runs) *r.add_runs() = std::move(run);
  return r;
}

const v1::BaselineCheck* FindCheck(const v1::Run& run, const std::string& field) {
  for (const auto& c : run.baseline().checks()) {
    if (c.field() == field) return &c;
  }
  return nullptr;
}

std::set<std::string> Failed(const v1::Run& run) {
  std::set<std::string> fields;
  for (const auto& c : run.baseline().checks()) {
    if (!c.passed()) fields.insert(c.field());
  }
  return fields;
}

Tolerances Percent(double p) {
  Tolerances t;
  t.default_percent = p;
  return t;
}

TEST(BaselineMatch, RunsMatchByEqualParamsWhateverTheirOrder) {
  v1::Run old8 = MakeRun(0, 8);
  (*old8.mutable_params())["settings.server.net.core.somaxconn"] = Number(8);
  v1::Run old16 = MakeRun(1, 16);
  (*old16.mutable_params())["settings.server.net.core.somaxconn"] = Number(16);
  const v1::Result baseline = MakeResult({old8, old16});

  v1::Run new16 = MakeRun(0, 16);
  (*new16.mutable_params())["settings.server.net.core.somaxconn"] = Number(16);
  v1::Run new8 = MakeRun(1, 8);
  (*new8.mutable_params())["settings.server.net.core.somaxconn"] = Number(8);
  v1::Run new32 = MakeRun(2, 32);
  (*new32.mutable_params())["settings.server.net.core.somaxconn"] = Number(32);
  v1::Result current = MakeResult({new16, new8, new32});

  // Matched runs are identical, the unmatched one is noted and does not fail the comparison.
  EXPECT_TRUE(CompareWithBaseline(baseline, "old.json", Percent(10), &current));
  EXPECT_EQ(current.baseline_file(), "old.json");
  EXPECT_EQ(current.runs(0).baseline().baseline_run_index(), 1);
  EXPECT_EQ(current.runs(1).baseline().baseline_run_index(), 0);
  EXPECT_TRUE(current.runs(0).baseline().passed());
  EXPECT_GT(current.runs(0).baseline().checks_size(), 0);
  EXPECT_EQ(current.runs(0).baseline().file(), "old.json");
  const v1::BaselineComparison& unmatched = current.runs(2).baseline();
  EXPECT_EQ(unmatched.baseline_run_index(), -1);
  EXPECT_EQ(unmatched.checks_size(), 0);
  EXPECT_THAT(unmatched.note(), HasSubstr("settings.server.net.core.somaxconn=32"));
}

TEST(BaselineMatch, StringParamDoesNotMatchNumberAndNoMatchAtAllFails) {
  v1::Run old = MakeRun(0, 16);
  (*old.mutable_params())["listeners.l1.backlog"] = Number(16);
  v1::Run now = MakeRun(0, 16);
  (*now.mutable_params())["listeners.l1.backlog"] = Text("16");
  v1::Result current = MakeResult({now});
  EXPECT_FALSE(CompareWithBaseline(MakeResult({old}), "old.json", Percent(10), &current));
  EXPECT_EQ(current.runs(0).baseline().baseline_run_index(), -1);
}

TEST(BaselineMatch, RunsWithoutParamsMatchEachOther) {
  v1::Result current = MakeResult({MakeRun(0, 16)});
  EXPECT_TRUE(CompareWithBaseline(MakeResult({MakeRun(0, 16)}), "b", Percent(10), &current));
  EXPECT_EQ(current.runs(0).baseline().baseline_run_index(), 0);
}

TEST(BaselineCheck, AValueMeasuredOnOneSideOnlyFailsAndOneMeasuredOnNeitherIsSkipped) {
  v1::Run old_run = MakeRun(0, 16);
  v1::Run new_run = MakeRun(0, 16);
  // The new run's target was not observed (no joined fates); neither run had a connect latency.
  v1::Fates* fates = (*new_run.mutable_floods())["f1"].mutable_fates();
  fates->clear_accepted();
  fates->clear_queued();
  fates->clear_syn_recv();
  fates->clear_unknown_to_server();
  (*old_run.mutable_floods())["f1"].clear_connect_latency_ms();
  (*new_run.mutable_floods())["f1"].clear_connect_latency_ms();
  v1::Result current = MakeResult({new_run});
  EXPECT_FALSE(CompareWithBaseline(MakeResult({old_run}), "b", Percent(10), &current));
  const v1::BaselineCheck* queued = FindCheck(current.runs(0), "floods.f1.fates.queued");
  ASSERT_NE(queued, nullptr);
  EXPECT_FALSE(queued->passed());
  EXPECT_EQ(queued->note(), "not_observed in this run");
  EXPECT_EQ(FindCheck(current.runs(0), "floods.f1.connect_latency_ms.p99"), nullptr);
}

TEST(BaselineCheck, ComparesOutcomesFatesLatenciesListenersAndChosenCounters) {
  v1::Result current = MakeResult({MakeRun(0, 16)});
  CompareWithBaseline(MakeResult({MakeRun(0, 16)}), "b", Percent(10), &current);
  std::set<std::string> fields;
  for (const auto& c : current.runs(0).baseline().checks()) fields.insert(c.field());
  for (const char* f :
       {"floods.f1.attempted", "floods.f1.established", "floods.f1.reset", "floods.f1.refused",
        "floods.f1.timed_out", "floods.f1.fates.queued", "floods.f1.fates.unknown_to_server",
        "floods.f1.connect_latency_ms.p50", "floods.f1.connect_latency_ms.p90",
        "floods.f1.connect_latency_ms.p99", "floods.f1.connect_latency_ms.max",
        "listeners.l1.backlog_effective", "listeners.l1.accepted", "listeners.l1.accept_queue_peak",
        "hosts.server.counters.TcpExtListenOverflows", "hosts.server.counters.TcpExtTCPSynRetrans",
        "hosts.client.counters.TcpOutRsts"}) {
    EXPECT_TRUE(fields.contains(f)) << f;
  }
  EXPECT_FALSE(fields.contains("hosts.server.counters.TcpPassiveOpens"));
}

TEST(BaselineCheck, ChangeBeyondToleranceFailsInBothDirections) {
  const v1::Result baseline = MakeResult({MakeRun(0, 16)});  // established 17
  for (int established : {19, 15}) {                         // +11.8%, -11.8%
    v1::Run run = MakeRun(0, 16);
    (*run.mutable_floods())["f1"].set_established(established);
    v1::Result current = MakeResult({run});
    EXPECT_FALSE(CompareWithBaseline(baseline, "b", Percent(10), &current)) << established;
    const v1::BaselineCheck* c = FindCheck(current.runs(0), "floods.f1.established");
    ASSERT_NE(c, nullptr);
    EXPECT_FALSE(c->passed());
    EXPECT_EQ(c->baseline(), 17);
    EXPECT_EQ(c->current(), established);
    EXPECT_EQ(c->tolerance_percent(), 10);
    EXPECT_EQ(Failed(current.runs(0)), std::set<std::string>{"floods.f1.established"});
  }
}

TEST(BaselineCheck, ChangeOfExactlyTheTolerancePasses) {
  v1::Run old = MakeRun(0, 16);
  (*old.mutable_floods())["f1"].set_attempted(10);
  v1::Run now = old;
  (*now.mutable_floods())["f1"].set_attempted(11);  // +10% exactly
  v1::Result current = MakeResult({now});
  EXPECT_TRUE(CompareWithBaseline(MakeResult({old}), "b", Percent(10), &current));
  (*now.mutable_floods())["f1"].set_attempted(12);  // +20%
  current = MakeResult({now});
  EXPECT_FALSE(CompareWithBaseline(MakeResult({old}), "b", Percent(10), &current));
}

TEST(BaselineCheck, AnyChangeFromZeroFailsWhateverTheTolerance) {
  const v1::Result baseline = MakeResult({MakeRun(0, 16)});  // no resets, no SYN retransmits
  v1::Run run = MakeRun(0, 16);
  (*run.mutable_floods())["f1"].set_reset(1);
  v1::Result current = MakeResult({run});
  EXPECT_FALSE(CompareWithBaseline(baseline, "b", Percent(1000), &current));
  const v1::BaselineCheck* c = FindCheck(current.runs(0), "floods.f1.reset");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->passed());
  EXPECT_THAT(c->note(), HasSubstr("baseline is 0"));
  EXPECT_THAT(DescribeCheck(*c), HasSubstr("0 -> 1 (from 0), tolerance 1000%"));
  // Zero on both sides passes.
  const v1::BaselineCheck* same = FindCheck(current.runs(0), "floods.f1.refused");
  ASSERT_NE(same, nullptr);
  EXPECT_TRUE(same->passed());
}

TEST(BaselineCheck, AbsentCounterReadsAsZeroAndMissingFloodFails) {
  v1::Run old = MakeRun(0, 16);
  v1::Run now = MakeRun(0, 16);
  (*now.mutable_hosts())["server"].mutable_counters()->erase("TcpExtListenDrops");
  (*now.mutable_floods())["f2"] = now.floods().at("f1");
  v1::Result current = MakeResult({now});
  EXPECT_FALSE(CompareWithBaseline(MakeResult({old}), "b", Percent(10), &current));
  const v1::BaselineCheck* drops =
      FindCheck(current.runs(0), "hosts.server.counters.TcpExtListenDrops");
  ASSERT_NE(drops, nullptr);
  EXPECT_EQ(drops->baseline(), 3);
  EXPECT_EQ(drops->current(), 0);
  const v1::BaselineCheck* f2 = FindCheck(current.runs(0), "floods.f2");
  ASSERT_NE(f2, nullptr);
  EXPECT_FALSE(f2->passed());
  EXPECT_EQ(f2->note(), "not in the baseline run");
}

TEST(Tolerance, MostSpecificPatternWins) {
  Tolerances t;
  t.default_percent = 10;
  t.fields = {{"floods.f1.connect_latency_ms.p99", 50},
              {"floods.*.connect_latency_ms.p99", 25},
              {"floods.*.connect_latency_ms.*", 40}};
  EXPECT_EQ(t.For("floods.f1.connect_latency_ms.p99"), 50);
  EXPECT_EQ(t.For("floods.f2.connect_latency_ms.p99"), 25);
  EXPECT_EQ(t.For("floods.f2.connect_latency_ms.p50"), 40);
  EXPECT_EQ(t.For("floods.f2.established"), 10);
  // `*` is one segment: a shorter pattern never matches a longer path.
  t.fields = {{"floods.*", 1}};
  EXPECT_EQ(t.For("floods.f1.established"), 10);
  EXPECT_EQ(Tolerances{}.For("floods.f1.established"), kDefaultTolerancePercent);
}

TEST(Tolerance, CommandLineOverridesScenario) {
  BaselineDef def;
  def.tolerance_percent = 10;
  def.fields = {{"floods.*.established", 5}};
  const Tolerances scenario = TolerancesFromScenario(def);

  absl::StatusOr<Tolerances> flags =
      ParseToleranceFlags("20%", {"floods.*.established=30%", "listeners.l1.accepted=0"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  const Tolerances merged = MergeTolerances(scenario, *flags);
  EXPECT_EQ(merged.For("floods.f1.established"), 30);  // same pattern: the command line's
  EXPECT_EQ(merged.For("floods.f1.attempted"), 20);    // default: the command line's
  EXPECT_EQ(merged.For("listeners.l1.accepted"), 0);

  // Without --tolerance the scenario's default stays.
  absl::StatusOr<Tolerances> fields_only = ParseToleranceFlags("", {"floods.f9.reset=1%"});
  ASSERT_TRUE(fields_only.ok());
  EXPECT_EQ(MergeTolerances(scenario, *fields_only).For("floods.f1.attempted"), 10);
  EXPECT_EQ(MergeTolerances(scenario, *fields_only).For("floods.f1.established"), 5);
}

TEST(ToleranceFlags, ParsesPercentWithOrWithoutSign) {
  absl::StatusOr<Tolerances> t = ParseToleranceFlags("7.5", {"hosts.*.counters.*=15%"});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->default_percent, 7.5);
  ASSERT_EQ(t->fields.size(), 1u);
  EXPECT_EQ(t->fields[0].first, "hosts.*.counters.*");
  EXPECT_EQ(t->fields[0].second, 15);
  EXPECT_FALSE(ParseToleranceFlags("", {})->default_percent.has_value());
}

TEST(ToleranceFlags, ErrorsNameTheFlagAndTheReason) {
  struct Case {
    std::string tolerance;
    std::vector<std::string> fields;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"abc", {}, {"--tolerance \"abc\"", "percentage"}},
      {"-5%", {}, {"--tolerance \"-5%\"", "percentage"}},
      {"%", {}, {"--tolerance \"%\"", "percentage"}},
      {"", {"floods.*.established"}, {"--tolerance-field \"floods.*.established\"", "PATTERN="}},
      {"", {"floods.*.established=x%"}, {"--tolerance-field", "percentage"}},
      {"", {"=5%"}, {"--tolerance-field \"=5%\"", "PATTERN="}},
      {"",
       {"floods.*.connect_latency.p99=25%"},
       {"--tolerance-field", "floods.*.connect_latency.p99", "matches no compared field"}},
      {"", {"floods.f*.established=5%"}, {"--tolerance-field", "whole segment"}},
      {"", {"floods..established=5%"}, {"--tolerance-field", "segment is empty"}},
      {"", {"hosts.server.counters.TcpPassiveOpens=5%"}, {"matches no compared field"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Tolerances> t = ParseToleranceFlags(c.tolerance, c.fields);
    ASSERT_FALSE(t.ok()) << c.tolerance << " " << (c.fields.empty() ? "" : c.fields[0]);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& e : c.expected) {
      EXPECT_THAT(std::string(t.status().message()), HasSubstr(e));
    }
  }
}

TEST(RenderComparison, ShowsKernelsAndSettingsSideBySideAndEveryRegression) {
  v1::Result old_result = MakeResult({MakeRun(0, 16)});
  v1::Result new_result = MakeResult({MakeRun(0, 8)});
  (*new_result.mutable_runs(0)->mutable_hosts())["server"].set_kernel("5.14.0-362.el9.x86_64");
  const std::string text =
      RenderComparison(old_result, "old/result.json", new_result, "new/result.json", Percent(10));
  SCOPED_TRACE(text);
  EXPECT_THAT(text, HasSubstr("old: old/result.json (scenario somaxconn-cap, 1 run)"));
  // Kernel and somaxconn changed and are marked; tcp_syncookies is shown unchanged.
  EXPECT_THAT(text, testing::ContainsRegex(
                        "kernel +6\\.1\\.0-18-amd64 +5\\.14\\.0-362\\.el9\\.x86_64 +<- changed"));
  EXPECT_THAT(text, testing::ContainsRegex("net\\.core\\.somaxconn +16 +8 +<- changed"));
  EXPECT_THAT(text, testing::ContainsRegex("net\\.ipv4\\.tcp_syncookies +1 +1\n"));
  EXPECT_THAT(text, HasSubstr("REGRESSION listeners.l1.backlog_effective: 16 -> 8 (-50.0%), "
                              "tolerance 10%"));
  EXPECT_THAT(text, HasSubstr("REGRESSION floods.f1.established: 17 -> 9 (-47.1%), tolerance 10%"));
  EXPECT_THAT(text, HasSubstr("REGRESSION floods.f1.timed_out: 3 -> 11 (+266.7%)"));
  EXPECT_THAT(text, Not(HasSubstr("REGRESSION floods.f1.attempted")));
  // Failed: backlog_effective, accept_queue_peak, established, timed_out, fates.queued,
  // fates.timed_out, ListenOverflows, ListenDrops.
  v1::Result copy = new_result;
  CompareWithBaseline(old_result, "old/result.json", Percent(10), &copy);
  const int total = copy.runs(0).baseline().checks_size();
  EXPECT_EQ(Failed(copy.runs(0)).size(), 8u);
  EXPECT_THAT(text, HasSubstr("8 regressed, " + std::to_string(total - 8) + " of " +
                              std::to_string(total) + " checks passed"));
  EXPECT_THAT(text, HasSubstr("REGRESSION: 8 failed checks in 1 of 1 compared runs"));
}

TEST(RenderComparison, IdenticalResultsPass) {
  const v1::Result r = MakeResult({MakeRun(0, 16)});
  const std::string text = RenderComparison(r, "a.json", r, "b.json", Percent(10));
  EXPECT_THAT(text, HasSubstr("PASS: 1 run compared, no regression"));
  EXPECT_THAT(text, Not(HasSubstr("<- changed")));
  EXPECT_THAT(text, Not(HasSubstr("REGRESSION")));
}

TEST(RenderComparison, NoMatchingRunFails) {
  v1::Run old = MakeRun(0, 16);
  (*old.mutable_params())["listeners.l1.backlog"] = Number(4);
  v1::Run now = MakeRun(0, 16);
  (*now.mutable_params())["listeners.l1.backlog"] = Number(8);
  const std::string text =
      RenderComparison(MakeResult({old}), "a.json", MakeResult({now}), "b.json", Percent(10));
  EXPECT_THAT(text, HasSubstr("no baseline run with params listeners.l1.backlog=8"));
  EXPECT_THAT(text, HasSubstr("old run 0 [listeners.l1.backlog=4]: no new run with these params"));
  EXPECT_THAT(text, HasSubstr("FAIL: no run of b.json matches a run of a.json by params"));
}

}  // namespace
}  // namespace synq::controller::verdict
