// Proves the flood proto conversion: a FloodResult with every field set survives struct -> proto
// -> struct (what flood worker processes ship over a pipe), and FloodSpec protos map their new
// fields (duration, ramp, steps, lifetime, close, threads, sources, records) into the engine's
// struct, refusing two rate profiles at once with the field named.
#include "agent/flood/flood_proto.h"

#include <chrono>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace synq::agent {
namespace {

using namespace std::chrono_literals;
namespace v1 = ::synq::agent::v1;

TEST(FloodProto, ResultRoundTripsEveryField) {
  FloodResult in;
  in.name = "f";
  in.attempted = 10;
  in.established = 5;
  in.reset = 1;
  in.refused = 1;
  in.timed_out = 2;
  in.errors["EOF"] = 1;
  in.connect_latency_us.Record(120);
  in.connect_latency_us.Record(3'000'000);
  ConnectionRecord& c = in.connections.emplace_back();
  c.local = "127.0.0.1:40000";
  c.remote = "127.0.0.1:80";
  c.outcome = Outcome::kTimedOut;
  c.started_at = std::chrono::system_clock::time_point(1'700'000'000s);
  c.outcome_after = 400ms;
  in.started_at = std::chrono::system_clock::time_point(1'700'000'000s + 5ms);
  in.answered = 4;
  in.launches_late = 3;
  in.launches_dropped = 7;
  in.launch_lag_max = 12ms;
  in.closed = 5;
  FloodSecond& s = in.series.emplace_back();
  s.second = 0;
  s.launched = 10;
  s.established = 5;
  s.reset = 1;
  s.refused = 1;
  s.timed_out = 2;
  s.errors = 1;
  s.late = 3;
  s.dropped = 7;
  s.answered = 4;
  s.connect_latency_us.Record(120);
  in.held.push_back({"127.0.0.1", "127.0.0.1:80", {40001, 65535}});
  in.threads = 2;
  in.workers = 3;
  in.worker_errors = {"worker 2: exit 1"};
  in.sources = {"127.0.0.1"};
  in.records_dropped = 9;
  in.open_peak = 6;

  v1::FloodResult proto;
  ToProto(in, &proto);
  const absl::StatusOr<FloodResult> out = FromProto(proto);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->name, "f");
  EXPECT_EQ(out->attempted, 10u);
  EXPECT_EQ(out->established, 5u);
  EXPECT_EQ(out->reset, 1u);
  EXPECT_EQ(out->refused, 1u);
  EXPECT_EQ(out->timed_out, 2u);
  EXPECT_EQ(out->errors, in.errors);
  EXPECT_EQ(out->connect_latency_us.count(), 2u);
  EXPECT_EQ(out->connect_latency_us.max(), 3'000'000u);
  EXPECT_EQ(out->connect_latency_us.buckets(), in.connect_latency_us.buckets());
  ASSERT_EQ(out->connections.size(), 1u);
  EXPECT_EQ(out->connections[0].local, c.local);
  EXPECT_EQ(out->connections[0].outcome, Outcome::kTimedOut);
  EXPECT_EQ(out->connections[0].started_at, c.started_at);
  EXPECT_EQ(out->connections[0].outcome_after, 400ms);
  EXPECT_EQ(out->connections[0].connect_latency.count(), -1);  // unset stays "not measured"
  EXPECT_EQ(out->started_at, in.started_at);
  EXPECT_EQ(out->answered, 4u);
  EXPECT_EQ(out->launches_late, 3u);
  EXPECT_EQ(out->launches_dropped, 7u);
  EXPECT_EQ(out->launch_lag_max, 12ms);
  EXPECT_EQ(out->closed, 5u);
  ASSERT_EQ(out->series.size(), 1u);
  EXPECT_EQ(out->series[0].launched, 10u);
  EXPECT_EQ(out->series[0].established, 5u);
  EXPECT_EQ(out->series[0].reset, 1u);
  EXPECT_EQ(out->series[0].refused, 1u);
  EXPECT_EQ(out->series[0].timed_out, 2u);
  EXPECT_EQ(out->series[0].errors, 1u);
  EXPECT_EQ(out->series[0].late, 3u);
  EXPECT_EQ(out->series[0].dropped, 7u);
  EXPECT_EQ(out->series[0].answered, 4u);
  EXPECT_EQ(out->series[0].connect_latency_us.count(), 1u);
  ASSERT_EQ(out->held.size(), 1u);
  EXPECT_EQ(out->held[0].local_ip, "127.0.0.1");
  EXPECT_EQ(out->held[0].remote, "127.0.0.1:80");
  EXPECT_EQ(out->held[0].local_ports, (std::vector<uint16_t>{40001, 65535}));
  EXPECT_EQ(out->threads, 2u);
  EXPECT_EQ(out->workers, 3u);
  EXPECT_EQ(out->worker_errors, in.worker_errors);
  EXPECT_EQ(out->sources, in.sources);
  EXPECT_EQ(out->records_dropped, 9u);
  EXPECT_EQ(out->open_peak, 6u);

  proto.mutable_held(0)->add_local_ports(70000);
  EXPECT_FALSE(FromProto(proto).ok());
}

TEST(FloodProto, SpecNewFieldsMapIntoTheStruct) {
  v1::FloodSpec p;
  p.set_name("churn");
  p.set_target("127.0.0.1:80");
  p.set_concurrency(100);
  p.mutable_duration()->set_seconds(10);
  p.mutable_ramp()->set_from(1000);
  p.mutable_ramp()->set_to(5000);
  p.mutable_ramp()->mutable_over()->set_seconds(5);
  p.mutable_lifetime()->set_nanos(50'000'000);
  p.set_close(v1::CLOSE_MODE_RST);
  p.set_threads(2);
  p.add_sources("127.0.0.2");
  p.set_keep_records(true);
  p.set_max_records(1000);
  absl::StatusOr<FloodSpec> s = FromProto(p);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->duration, 10s);
  EXPECT_EQ(s->profile.kind, RateProfile::Kind::kRamp);
  EXPECT_EQ(s->profile.from, 1000);
  EXPECT_EQ(s->profile.to, 5000);
  EXPECT_EQ(s->profile.over, 5s);
  EXPECT_EQ(s->lifetime, 50ms);
  EXPECT_EQ(s->close, CloseMode::kRst);
  EXPECT_EQ(s->threads, 2u);
  EXPECT_EQ(s->sources, std::vector<std::string>{"127.0.0.2"});
  EXPECT_TRUE(s->keep_records);
  EXPECT_EQ(s->max_records, 1000u);

  p.clear_ramp();
  p.mutable_steps()->add_rates(10);
  p.mutable_steps()->add_rates(20);
  p.mutable_steps()->mutable_each()->set_seconds(2);
  s = FromProto(p);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->profile.kind, RateProfile::Kind::kSteps);
  EXPECT_EQ(s->profile.steps, (std::vector<double>{10, 20}));
  EXPECT_EQ(s->profile.each, 2s);

  p.clear_steps();
  p.set_rate(300);
  p.clear_close();
  s = FromProto(p);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->profile.kind, RateProfile::Kind::kConstant);
  EXPECT_EQ(s->profile.rate, 300);
  EXPECT_EQ(s->rate, 300);
  EXPECT_EQ(s->close, CloseMode::kKeep);  // unspecified = keep

  p.mutable_steps()->add_rates(10);
  s = FromProto(p);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("floods.churn.rate"));
}

}  // namespace
}  // namespace synq::agent
