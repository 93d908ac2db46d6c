// Proves the sustained-flood result: fates of held connections are joined with the server's
// sockets from the agent's packed local ports (no per-connection records), failures come from
// the flood's counters, connections the flood closed itself get no fate; the per-second series
// carries percentiles from each second's histogram and the scheduled rate from the profile, the
// first failing second is found; the table says loudly when the generator fell behind and marks
// the first failures; the report draws the per-second chart; the diagnosis explains dropped
// launches with the concurrency the schedule needs.
#include "controller/result/flood_series.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/histogram.h"
#include "controller/result/flood_series_chart.h"
#include "controller/result/flood_text.h"
#include "controller/result/run_builder.h"
#include "controller/verdict/diagnosis.h"
#include "controller/verdict/field_path.h"
#include "controller/verdict/generator_rule.h"

namespace synq::controller::result {
namespace {

namespace av1 = ::synq::agent::v1;
namespace rv1 = ::synq::result::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

// A ramp 200/s -> 3000/s over 10 s: 280/s more every second.
FloodDef Ramp() {
  FloodDef f;
  f.name = "f1";
  f.host = "client";
  f.target = "l1";
  f.connections = 0;
  f.concurrency = 100;
  f.rate_kind = RateKind::kRamp;
  f.ramp_from = 200;
  f.ramp_to = 3000;
  f.ramp_over = seconds(10);
  f.duration = seconds(10);
  f.close = CloseMode::kRst;
  f.lifetime = milliseconds(20);
  return f;
}

// One second of an agent's series with `connect_us` connect latencies recorded.
av1::FloodSecond AgentSecond(uint32_t second, uint64_t launched, uint64_t timed_out,
                             const std::vector<uint64_t>& connect_us) {
  av1::FloodSecond s;
  s.set_second(second);
  s.set_launched(launched);
  s.set_established(launched - timed_out);
  s.set_timed_out(timed_out);
  common::Histogram h;
  for (uint64_t us : connect_us) h.Record(us);
  s.mutable_connect_latency()->set_sub_bucket_bits(h.sub_bucket_bits());
  for (const auto& [bucket, n] : h.buckets())
    (*s.mutable_connect_latency()->mutable_buckets())[bucket] = n;
  s.mutable_connect_latency()->set_count(h.count());
  s.mutable_connect_latency()->set_max_us(h.max());
  return s;
}

struct Fixture {
  Fixture() {
    plan.scenario.name = "t";
    plan.scenario.hosts = {{"server", "", ""}, {"client", "", ""}};
    ListenerDef l;
    l.name = "l1";
    l.host = "server";
    plan.scenario.listeners = {l};
    plan.scenario.floods = {Ramp()};
    in.plan = &plan;
    in.run_id = "r";
    in.targets["f1"] = {"198.18.0.2", 4000, "l1"};

    HostReplies server;
    server.name = "server";
    av1::CollectResultsResponse sc;
    auto* listener = sc.add_listeners();
    listener->set_name("l1");
    listener->set_port(4000);
    // The server holds two of the three held connections: one accepted, one queued.
    auto* accepted = sc.add_server_sockets();
    accepted->set_local("198.18.0.2:4000");
    accepted->set_remote("198.18.1.2:40000");
    accepted->set_state(av1::TCP_STATE_ESTABLISHED);
    accepted->set_accepted(true);
    auto* queued = sc.add_server_sockets();
    queued->set_local("198.18.0.2:4000");
    queued->set_remote("198.18.0.3:40001");
    queued->set_state(av1::TCP_STATE_ESTABLISHED);
    server.collected = sc;

    HostReplies client;
    client.name = "client";
    av1::CollectResultsResponse cc;
    av1::FloodResult* f = cc.add_floods();
    f->set_name("f1");
    f->set_attempted(1000);
    f->set_established(990);
    f->set_timed_out(6);
    f->set_refused(1);
    (*f->mutable_errors())["EADDRNOTAVAIL"] = 3;
    f->set_closed(987);
    f->set_threads(2);
    f->set_workers(1);
    f->set_launches_late(4);
    f->set_launches_dropped(0);
    f->add_sources("198.18.0.3");
    f->add_sources("198.18.1.2");
    // Held at the end: 198.18.1.2:40000 (accepted), 198.18.0.3:40001 (queued), :40002 (no
    // server state).
    av1::HeldConnections* a = f->add_held();
    a->set_local_ip("198.18.1.2");
    a->set_remote("198.18.0.2:4000");
    a->add_local_ports(40000);
    av1::HeldConnections* b = f->add_held();
    b->set_local_ip("198.18.0.3");
    b->set_remote("198.18.0.2:4000");
    b->add_local_ports(40001);
    b->add_local_ports(40002);
    // Second 0: connects of 100..300 us; second 3 has the first timeouts.
    *f->add_series() = AgentSecond(0, 340, 0, {100, 200, 300});
    *f->add_series() = AgentSecond(1, 620, 0, {150});
    *f->add_series() = AgentSecond(2, 900, 0, {150});
    *f->add_series() = AgentSecond(3, 1180, 6, {200, 900000});
    *f->add_series() = AgentSecond(4, 1460, 0, {});
    client.collected = cc;
    in.hosts = {server, client};
  }
  RunPlan plan;
  RunInputs in;
};

TEST(FloodSeries, HeldConnectionsAreJoinedWithoutRecords) {
  Fixture fx;
  const rv1::Run run = BuildRun(fx.in);
  const rv1::Flood& f = run.floods().at("f1");
  EXPECT_TRUE(f.server_observed());
  EXPECT_EQ(f.fates().accepted(), 1u);
  EXPECT_EQ(f.fates().queued(), 1u);
  EXPECT_EQ(f.fates().unknown_to_server(), 1u);
  // Failures from the counters; the 987 closed by the flood have no fate.
  EXPECT_EQ(f.fates().timed_out(), 6u);
  EXPECT_EQ(f.fates().refused(), 1u);
  EXPECT_EQ(f.fates().error(), 3u);
  EXPECT_EQ(f.closed(), 987u);
  EXPECT_EQ(f.connections_size(), 0);
}

TEST(FloodSeries, EofFromAnObservedServerCountsAsAcceptedWithoutRecords) {
  // The server application closed these after accepting them: the client read EOF.
  Fixture fx;
  (*fx.in.hosts[1].collected->mutable_floods(0)->mutable_errors())["EOF"] = 5;
  const rv1::Run run = BuildRun(fx.in);
  EXPECT_EQ(run.floods().at("f1").fates().accepted(), 1u + 5u);
  EXPECT_EQ(run.floods().at("f1").fates().error(), 3u);
}

TEST(FloodSeries, SeriesHasPercentilesScheduledRateAndTheFirstFailure) {
  Fixture fx;
  const rv1::Run run = BuildRun(fx.in);
  const rv1::Flood& f = run.floods().at("f1");
  ASSERT_EQ(f.series_size(), 5);
  // Second 0 of the ramp: mean rate 200 + 280 / 2.
  EXPECT_DOUBLE_EQ(f.series(0).rate(), 340);
  EXPECT_DOUBLE_EQ(f.series(3).rate(), 200 + 280 * 3.5);
  // Values below 2^5 us are exact; 300 us lies in a bucket 8 us wide ([2^8, 2^9) / 32).
  EXPECT_NEAR(f.series(0).connect_latency_ms().p50(), 0.2, 0.008);
  EXPECT_NEAR(f.series(0).connect_latency_ms().max(), 0.3, 1e-9);
  EXPECT_EQ(f.series(0).connect_latency_ms().count(), 3u);
  EXPECT_FALSE(f.series(4).has_connect_latency_ms());  // nothing connected: absent, not 0
  EXPECT_EQ(f.first_failure_second(), 3u);
  EXPECT_DOUBLE_EQ(f.first_failure_rate(), 1180);
  EXPECT_EQ(f.rate_profile(), "ramp 200/s to 3000/s over 10s");
  EXPECT_EQ(f.close(), "rst");
  EXPECT_DOUBLE_EQ(f.lifetime_ms(), 20);
  EXPECT_DOUBLE_EQ(f.duration_ms(), 10000);
  EXPECT_EQ(f.threads(), 2u);
  EXPECT_EQ(f.launches_late(), 4u);
  // The knee is reachable by expectations.
  absl::StatusOr<double> knee = verdict::ReadFieldPath(run, "floods.f1.first_failure_rate");
  ASSERT_TRUE(knee.ok()) << knee.status();
  EXPECT_DOUBLE_EQ(*knee, 1180);
  EXPECT_TRUE(verdict::CheckFieldPath(fx.plan.scenario, "floods.f1.launches_dropped").ok());
}

TEST(FloodSeries, AnAgentBefore04KeepsTheRecordJoinAndSaysWhatIsMissing) {
  Fixture fx;
  av1::FloodResult* f = fx.in.hosts[1].collected->mutable_floods(0);
  f->set_threads(0);
  f->clear_held();
  f->clear_series();
  av1::ConnectionRecord* c = f->add_connections();
  c->set_outcome(av1::OUTCOME_ESTABLISHED);
  c->set_local("198.18.1.2:40000");
  c->set_remote("198.18.0.2:4000");
  const rv1::Run run = BuildRun(fx.in);
  EXPECT_EQ(run.floods().at("f1").fates().accepted(), 1u);
  EXPECT_EQ(run.floods().at("f1").fates().timed_out(), 0u);  // from records only
  EXPECT_FALSE(run.floods().at("f1").has_first_failure_second());
  EXPECT_THAT(run.not_observed(), testing::Contains(HasSubstr("floods.f1.series")));
}

TEST(FloodSeries, TableShowsTheSeriesAndShoutsWhenLaunchesWereDropped) {
  Fixture fx;
  fx.in.hosts[1].collected->mutable_floods(0)->set_launches_dropped(25);
  const rv1::Run run = BuildRun(fx.in);
  const std::string text = SustainedFloodText(run.floods().at("f1"));
  EXPECT_THAT(text, HasSubstr("generator fell behind: 25 launches dropped, 4 late"));
  EXPECT_THAT(text, HasSubstr("ramp 200/s to 3000/s over 10s"));
  EXPECT_THAT(text, HasSubstr("first failures"));
  // The row of second 3 carries the mark, with its scheduled rate.
  EXPECT_THAT(text, testing::ContainsRegex("\n    3 +1180 +1180 +1174 +6 .*<- first failures"));

  const std::string chart = FloodSeriesChart("f1", run.floods().at("f1"));
  EXPECT_THAT(chart, HasSubstr("<svg"));
  EXPECT_THAT(chart, HasSubstr("first failures: second 3 (scheduled 1180/s)"));
  EXPECT_THAT(chart, HasSubstr("dropped 25 launches"));
  EXPECT_THAT(chart, Not(HasSubstr("http")));  // inline, nothing fetched

  std::vector<rv1::Finding> findings;
  verdict::GeneratorBehind("f1", run.floods().at("f1"), findings);
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].rule(), verdict::kRuleGeneratorBehind);
  EXPECT_THAT(findings[0].text(), HasSubstr("25 launches were due but never made"));
  // Peak scheduled rate 1460/s (second 4) x (p99 connect 900 ms... of the flood) + lifetime.
  EXPECT_THAT(findings[0].remedy(), HasSubstr("Raise concurrency"));
}

TEST(FloodSeries, ShortOrBurstFloodsPrintNoSeries) {
  rv1::Flood burst;
  EXPECT_EQ(SustainedFloodText(burst), "");
  EXPECT_EQ(FloodSeriesChart("f", burst), "");
  // A burst measured by a 0.4 agent: no schedule line, no series, unless it fell behind.
  burst.set_threads(1);
  burst.set_close("keep");
  burst.set_rate_profile("as fast as possible");
  EXPECT_EQ(SustainedFloodText(burst), "");
  burst.set_launches_late(3);
  EXPECT_THAT(SustainedFloodText(burst),
              HasSubstr("generator fell behind: 0 launches dropped, 3 late"));
}

}  // namespace
}  // namespace synq::controller::result
