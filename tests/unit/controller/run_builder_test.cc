// Proves the result builder on agents' replies: fates joined across hosts, a flood at a server
// synq did not start is never called unknown_to_server, what was not measured is absent and
// named in not_observed (never 0), start skew and lateness on the controller's clock, samples
// corrected by each host's clock offset, and a failed host keeps everything that did arrive.
#include "controller/result/run_builder.h"

#include <gtest/gtest.h>

#include "controller/result/result_json.h"
#include "controller/run/progress.h"
#include "proto/proto_time.h"

namespace synq::controller::result {
namespace {

namespace av1 = ::synq::agent::v1;
using std::chrono::milliseconds;
using Clock = std::chrono::system_clock;

Scenario TwoHosts() {
  Scenario s;
  s.name = "t";
  s.hosts = {{"server", "", ""}, {"client", "", ""}};
  ListenerDef l;
  l.name = "l1";
  l.host = "server";
  l.backlog = 4;
  s.listeners = {l};
  FloodDef f;
  f.name = "f1";
  f.host = "client";
  f.target = "l1";
  f.connections = 3;
  FloodDef other = f;
  other.name = "f2";
  other.target = "198.18.0.9:80";
  s.floods = {f, other};
  return s;
}

av1::ConnectionRecord Established(const std::string& local, const std::string& remote) {
  av1::ConnectionRecord c;
  c.set_outcome(av1::OUTCOME_ESTABLISHED);
  c.set_local(local);
  c.set_remote(remote);
  return c;
}

struct Fixture {
  Fixture() {
    plan.scenario = TwoHosts();
    in.plan = &plan;
    in.run_id = "r";
    HostReplies server;
    server.name = "server";
    server.clock_offset = milliseconds(0);
    av1::CollectResultsResponse sc;
    auto* l = sc.add_listeners();
    l->set_name("l1");
    l->set_ip("0.0.0.0");
    l->set_port(4000);
    l->set_backlog(4);
    l->set_backlog_effective(4);
    auto* queued = sc.add_server_sockets();
    queued->set_local("198.18.0.2:4000");
    queued->set_remote("198.18.0.3:50001");
    queued->set_state(av1::TCP_STATE_ESTABLISHED);
    auto* half = sc.add_server_sockets();
    half->set_local("198.18.0.2:4000");
    half->set_remote("198.18.0.3:50002");
    half->set_state(av1::TCP_STATE_NEW_SYN_RECV);
    server.collected = sc;
    HostReplies client;
    client.name = "client";
    client.clock_offset = milliseconds(5000);  // its clock runs 5 s ahead
    av1::CollectResultsResponse cc;
    auto* f1 = cc.add_floods();
    f1->set_name("f1");
    f1->set_attempted(3);
    f1->set_established(3);
    *f1->add_connections() = Established("198.18.0.3:50001", "198.18.0.2:4000");
    *f1->add_connections() = Established("198.18.0.3:50002", "198.18.0.2:4000");
    *f1->add_connections() = Established("198.18.0.3:50003", "198.18.0.2:4000");
    // Started 2 ms after the instant, on its own clock.
    proto::ToProto(start + milliseconds(5002), f1->mutable_started_at());
    auto* f2 = cc.add_floods();
    f2->set_name("f2");
    f2->set_attempted(1);
    f2->set_established(1);
    *f2->add_connections() = Established("198.18.0.3:50010", "198.18.0.9:80");
    proto::ToProto(start + milliseconds(5007), f2->mutable_started_at());
    client.collected = cc;
    av1::Sample sample;
    proto::ToProto(start + milliseconds(5100), sample.mutable_at());  // 100 ms after the start
    client.samples.push_back(sample);
    in.hosts = {server, client};
    in.targets["f1"] = {"198.18.0.2", 4000, "l1"};
    in.targets["f2"] = {"198.18.0.9", 80, ""};
    in.start_at = start;
  }
  const Clock::time_point start = Clock::time_point(std::chrono::seconds(1'800'000'000));
  RunPlan plan;
  RunInputs in;
};

TEST(RunBuilder, JoinsFatesAcrossHostsAndNeverCallsAnUnobservedServerUnknown) {
  Fixture f;
  const auto run = BuildRun(f.in);
  const auto& f1 = run.floods().at("f1");
  EXPECT_TRUE(f1.server_observed());
  EXPECT_EQ(f1.fates().queued(), 1u);
  EXPECT_EQ(f1.fates().syn_recv(), 1u);
  EXPECT_EQ(f1.fates().unknown_to_server(), 1u);
  EXPECT_EQ(f1.target(), "198.18.0.2:4000");
  EXPECT_EQ(f1.listener(), "l1");
  // f2 went to a server no agent watched: established, but not joined.
  const auto& f2 = run.floods().at("f2");
  EXPECT_FALSE(f2.server_observed());
  EXPECT_EQ(f2.fates().unknown_to_server(), 0u);
  EXPECT_EQ(f2.fates().established_unjoined(), 1u);
}

TEST(RunBuilder, StartLatenessAndSkewAreMeasuredOnTheControllersClock) {
  Fixture f;
  const auto run = BuildRun(f.in);
  // Agent times minus the 5 s offset: f1 started 2 ms late, f2 7 ms late.
  ASSERT_TRUE(run.floods().at("f1").has_start_lateness_ms());
  EXPECT_NEAR(run.floods().at("f1").start_lateness_ms(), 2.0, 1e-6);
  EXPECT_NEAR(run.start_skew_ms(), 5.0, 1e-6);
  EXPECT_NEAR(run.start_lateness_ms(), 7.0, 1e-6);
  ASSERT_EQ(run.samples_size(), 1);
  EXPECT_NEAR(run.samples(0).t_ms(), 100.0, 1e-6);
  EXPECT_EQ(run.samples(0).host(), "client");
}

TEST(RunBuilder, WhatWasNotMeasuredIsAbsentAndNamed) {
  Fixture f;
  f.in.start_at.reset();  // no flood was scheduled (the run failed before)
  f.in.hosts[1].clock_offset.reset();
  const auto run = BuildRun(f.in);
  EXPECT_FALSE(run.has_start_skew_ms());
  EXPECT_FALSE(run.has_start_lateness_ms());
  EXPECT_FALSE(run.floods().at("f1").has_start_lateness_ms());
  EXPECT_FALSE(run.hosts().at("client").has_clock_offset_ms());
  std::string all;
  for (const auto& n : run.not_observed()) all += n + "\n";
  EXPECT_NE(all.find("start_skew_ms"), std::string::npos) << all;
  EXPECT_NE(all.find("floods.f1.start_lateness_ms"), std::string::npos) << all;
}

TEST(RunBuilder, ResultJsonLeavesOutWhatWasNotMeasuredAndWritesMeasuredZeros) {
  Fixture f;
  f.in.start_at.reset();
  synq::result::v1::Result result;
  *result.add_runs() = BuildRun(f.in);
  const std::string json = ToJson(result);
  EXPECT_EQ(json.find("\"start_skew_ms\""), std::string::npos) << json;
  EXPECT_EQ(json.find("\"connect_latency_ms\""), std::string::npos)
      << "no connect latency was measured in this fixture";
  EXPECT_NE(json.find("\"reset\": 0"), std::string::npos) << "a measured zero is written";
  EXPECT_NE(json.find("\"not_observed\""), std::string::npos);
  // And it reads back into the same message.
  auto back = FromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->runs(0).has_start_skew_ms());
}

TEST(RunBuilder, AFailedHostKeepsWhatArrivedAndIsMarked) {
  Fixture f;
  f.in.hosts[0].collected.reset();  // the server failed before its snapshot
  f.in.hosts[0].error = "agent unreachable";
  f.in.errors = {"server: agent unreachable"};
  const auto run = BuildRun(f.in);
  EXPECT_EQ(run.hosts().at("server").error(), "agent unreachable");
  ASSERT_TRUE(run.floods().contains("f1")) << "the client's results are kept";
  // Without the server's view no fate can be joined, so none is claimed.
  EXPECT_FALSE(run.floods().at("f1").server_observed());
  EXPECT_EQ(run.floods().at("f1").fates().unknown_to_server(), 0u);
  EXPECT_EQ(run.errors_size(), 1);
}

TEST(Progress, LinesSayRunOfTotalElapsedAndConnects) {
  EXPECT_EQ(Progress::LiveLine(1, 10, 3.25, 1234), "synq: run 2/10  3.2 s  1234 connects");
  synq::result::v1::Run run;
  run.set_duration_ms(4200);
  (*run.mutable_floods())["f1"].set_attempted(20);
  (*run.mutable_floods())["f1"].set_established(5);
  EXPECT_EQ(Progress::RunLine(0, 3, "listeners.l1.backlog=4", run),
            "synq: run 1/3 listeners.l1.backlog=4 done in 4.2 s: 20 attempted, 5 established");
  EXPECT_EQ(Progress::RunLine(0, 1, "", run),
            "synq: run 1/1 done in 4.2 s: 20 attempted, 5 established");
  run.add_errors("server: gone");
  EXPECT_NE(Progress::RunLine(0, 3, "", run).find("FAILED"), std::string::npos);
}

}  // namespace
}  // namespace synq::controller::result
