// Proves that the agent's request checks (agent/service/requests.h) hold every field to its bound
// with an error naming the field and the bound, keep what is within them, and that durations
// beyond int64 nanoseconds saturate (proto/proto_time.h) so the bound catches them instead of a
// wrapped, negative value slipping through.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <limits>

#include "agent/service/requests.h"
#include "common/limits.h"
#include "common/saturating.h"
#include "proto/proto_time.h"

namespace synq::agent {
namespace {

namespace v1 = ::synq::agent::v1;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using ::testing::HasSubstr;

TEST(ProtoTime, DurationBeyondInt64NanosecondsSaturates) {
  google::protobuf::Duration d;
  d.set_seconds(315'576'000'000);  // 10,000 years, the largest valid Duration
  EXPECT_EQ(proto::FromProto(d), nanoseconds::max());
  d.set_seconds(-315'576'000'000);
  EXPECT_EQ(proto::FromProto(d), nanoseconds::min());
  d.set_seconds(2);
  d.set_nanos(5);
  EXPECT_EQ(proto::FromProto(d), nanoseconds(2'000'000'005));
}

TEST(Saturating, AddMulAndFromDoubleClampAtTheEnds) {
  EXPECT_EQ(common::SaturatingAdd(nanoseconds::max(), nanoseconds(1)), nanoseconds::max());
  EXPECT_EQ(common::SaturatingAdd(nanoseconds::min(), nanoseconds(-1)), nanoseconds::min());
  EXPECT_EQ(common::SaturatingMul(nanoseconds(1) * 1'000'000'000, 10'000'000'000),
            nanoseconds::max());
  EXPECT_EQ(common::SaturatingMul(nanoseconds(-3), 1LL << 62), nanoseconds::min());
  EXPECT_EQ(common::SaturatingNanos(1e300), nanoseconds::max());
  EXPECT_EQ(common::SaturatingNanos(std::numeric_limits<double>::quiet_NaN()), nanoseconds::max());
  EXPECT_EQ(common::SaturatingNanos(1500.7), nanoseconds(1500));
}

TEST(ToBeginRun, SampleIntervalBelowAMillisecondIsRefused) {
  v1::BeginRunRequest r;
  proto::ToProto(nanoseconds(100), r.mutable_sample_interval());
  absl::StatusOr<BeginRunSpec> spec = ToBeginRun(r);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(spec.status().message(),
              HasSubstr("sample_interval: must be between 1000000 ns and 86400000000000 ns"));
  proto::ToProto(milliseconds(100), r.mutable_sample_interval());
  spec = ToBeginRun(r);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->sample_interval, milliseconds(100));
}

TEST(ToBeginRun, LeaseOfTenThousandYearsIsRefusedNotWrapped) {
  v1::BeginRunRequest r;
  proto::ToProto(milliseconds(100), r.mutable_sample_interval());
  r.mutable_lease()->set_seconds(315'576'000'000);
  absl::StatusOr<BeginRunSpec> spec = ToBeginRun(r);
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("lease: must be between 0 ns and"));
}

TEST(ToFloodsSpec, FloodBoundsNameTheFieldAndTheBound) {
  v1::StartFloodsRequest r;
  v1::FloodSpec* f = r.add_floods();
  f->set_name("f1");
  f->set_target("127.0.0.1:80");
  f->set_connections(1);
  f->set_concurrency(1);
  proto::ToProto(std::chrono::seconds(1), f->mutable_connect_timeout());
  ASSERT_TRUE(ToFloodsSpec(r).ok());
  f->set_payload(std::string(common::kMaxPayloadBytes + 1, 'x'));
  EXPECT_THAT(ToFloodsSpec(r).status().message(),
              HasSubstr("floods.f1.payload: at most 65536 bytes, got 65537"));
  f->clear_payload();
  f->mutable_hold()->set_seconds(978'285'600);  // 31 years
  EXPECT_THAT(ToFloodsSpec(r).status().message(), HasSubstr("floods.f1.hold: must be between 0"));
  f->clear_hold();
  f->set_rate(1e300);
  EXPECT_THAT(ToFloodsSpec(r).status().message(), HasSubstr("floods.f1.rate: must be between 0"));
  f->set_rate(0);
  f->set_connections(uint64_t{1} << 40);
  EXPECT_THAT(ToFloodsSpec(r).status().message(),
              HasSubstr("floods.f1.connections: at most 10000000"));
}

TEST(ToListenerSpec, PausesAndIntervalsAreBounded) {
  v1::StartListenerRequest r;
  v1::ListenerSpec* l = r.mutable_listener();
  l->set_name("l1");
  l->set_accept(v1::ACCEPT_MODE_PACED);
  l->mutable_accept_interval()->set_seconds(100'000);  // past a day
  EXPECT_THAT(ToListenerSpec(r).status().message(),
              HasSubstr("listeners.l1.accept_interval: must be between 1 ns and"));
  l->mutable_accept_interval()->set_seconds(1);
  v1::Pause* p = l->add_pauses();
  p->mutable_length()->set_seconds(1);
  p->mutable_at()->set_seconds(-315'576'000'000);
  EXPECT_THAT(ToListenerSpec(r).status().message(), HasSubstr("listeners.l1.pauses[0]"));
  p->mutable_at()->set_seconds(2);
  absl::StatusOr<ListenerSpec> spec = ToListenerSpec(r);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->accept_interval, std::chrono::seconds(1));
  ASSERT_EQ(spec->pauses.size(), 1u);
  EXPECT_EQ(spec->pauses[0].at, std::chrono::seconds(2));
}

TEST(ToShapingRequests, DelayLossAndInterfaceAreBounded) {
  v1::ApplyShapingRequest r;
  v1::Shaping* s = r.add_shapings();
  s->set_interface("eth0");
  s->set_backend(v1::SHAPING_BACKEND_NETEM);
  s->mutable_delay()->set_seconds(61);
  EXPECT_THAT(ToShapingRequests(r).status().message(), HasSubstr("shapings[0].delay"));
  s->mutable_delay()->set_seconds(0);
  s->set_loss_percent(101);
  EXPECT_THAT(ToShapingRequests(r).status().message(), HasSubstr("shapings[0].loss_percent"));
  s->set_loss_percent(1);
  s->set_interface("an-interface-name-too-long");
  EXPECT_THAT(ToShapingRequests(r).status().message(), HasSubstr("shapings[0].interface"));
}

TEST(ToSettings, KeyGivenTwiceIsRefused) {
  v1::ApplySettingsRequest r;
  for (int i = 0; i < 2; ++i) {
    v1::Setting* s = r.add_settings();
    s->set_key("net.core.somaxconn");
    s->set_value(100 + i);
  }
  EXPECT_THAT(ToSettings(r).status().message(),
              HasSubstr("settings[1]: key net.core.somaxconn given twice"));
}

}  // namespace
}  // namespace synq::agent
