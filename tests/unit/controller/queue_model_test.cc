// Proves the queueing model's maths: lambda* = mu + K/T with K = backlog_effective + 1, the loss
// tolerance's (mu + K/T) / (1 - loss), the service rate taken from accept_rate or
// accept_interval (0 for a listener that never accepts), the error against a measured knee, and
// no invented prediction where no service rate or queue room is known.
#include "controller/search/queue_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace synq::controller::search {
namespace {

namespace rv1 = ::synq::result::v1;
using ::testing::HasSubstr;

rv1::Listener Paced(double interval_ms, int backlog_effective) {
  rv1::Listener l;
  l.set_accept(rv1::ACCEPT_MODE_PACED);
  l.set_accept_interval_ms(interval_ms);
  l.set_backlog(backlog_effective);
  l.set_backlog_effective(backlog_effective);
  return l;
}

TEST(QueueModel, KneeIsServiceRatePlusRoomOverTrial) {
  // 500 accepts/s, backlog 16 holds 17, T = 2 s: the queue absorbs 17 over 2 s = 8.5/s more.
  EXPECT_DOUBLE_EQ(PredictedKnee(500, 17, 2, 0), 508.5);
  // A listener that never accepts sustains K connections over T, no more.
  EXPECT_DOUBLE_EQ(PredictedKnee(0, 129, 1, 0), 129);
  // Tolerating 5% drops: drops (lambda - mu) T - K may reach 0.05 lambda T.
  EXPECT_DOUBLE_EQ(PredictedKnee(100, 33, 1, 0.05), 133 / 0.95);
}

TEST(QueueModel, PacedListenerByIntervalPredictsAndMeasuresTheError) {
  const rv1::Listener l = Paced(10, 32);
  const rv1::QueueModel m = ModelKnee(&l, "l1", 1.0, 0, 125.0);
  ASSERT_TRUE(m.has_predicted_rate());
  EXPECT_DOUBLE_EQ(m.predicted_rate(), 133);  // 100/s + 33 / 1 s
  ASSERT_TRUE(m.has_error_percent());
  EXPECT_DOUBLE_EQ(m.error_percent(), (125.0 - 133) / 133 * 100);
  EXPECT_THAT(m.statement(), HasSubstr("mu = 1 / 10 ms = 100/s"));
  EXPECT_THAT(m.statement(), HasSubstr("K = backlog_effective + 1 = 33"));
  EXPECT_THAT(m.statement(), HasSubstr("It ignores"));
  EXPECT_TRUE(m.note().empty());
}

TEST(QueueModel, AcceptRateTakesPrecedenceOverInterval) {
  rv1::Listener l = Paced(10, 64);
  l.set_accept_rate(250);
  EXPECT_DOUBLE_EQ(*ServiceRate(l), 250);
  EXPECT_DOUBLE_EQ(ModelKnee(&l, "l1", 2.0, 0, std::nullopt).predicted_rate(), 250 + 65 / 2.0);
}

TEST(QueueModel, NoKneeMeansNoError) {
  const rv1::Listener l = Paced(2, 16);
  const rv1::QueueModel m = ModelKnee(&l, "l1", 1.0, 0, std::nullopt);
  EXPECT_TRUE(m.has_predicted_rate());
  EXPECT_FALSE(m.has_error_percent());
}

TEST(QueueModel, NeverAcceptingListenerHasServiceRateZero) {
  rv1::Listener l;
  l.set_accept(rv1::ACCEPT_MODE_NEVER);
  l.set_backlog_effective(128);
  EXPECT_DOUBLE_EQ(*ServiceRate(l), 0);
  EXPECT_DOUBLE_EQ(ModelKnee(&l, "l1", 1.0, 0, std::nullopt).predicted_rate(), 129);
}

TEST(QueueModel, ImmediateListenerGetsANoteAndNoPrediction) {
  rv1::Listener l;
  l.set_accept(rv1::ACCEPT_MODE_IMMEDIATE);
  l.set_backlog_effective(128);
  const rv1::QueueModel m = ModelKnee(&l, "l1", 1.0, 0, 5000.0);
  EXPECT_FALSE(m.has_predicted_rate());
  EXPECT_FALSE(m.has_error_percent());
  EXPECT_THAT(m.note(), HasSubstr("accepts immediately"));
}

TEST(QueueModel, ObservedListenerAndAddressTargetGetNoPrediction) {
  rv1::Listener l = Paced(10, 32);
  l.set_observed(true);
  EXPECT_THAT(ModelKnee(&l, "web", 1.0, 0, 100.0).note(), HasSubstr("another process"));
  EXPECT_FALSE(ModelKnee(&l, "web", 1.0, 0, 100.0).has_predicted_rate());
  EXPECT_THAT(ModelKnee(nullptr, "", 1.0, 0, 100.0).note(), HasSubstr("address"));
}

TEST(QueueModel, UnreadBacklogMeansNoPrediction) {
  rv1::Listener l = Paced(10, 32);
  l.clear_backlog_effective();
  const rv1::QueueModel m = ModelKnee(&l, "l1", 1.0, 0, 100.0);
  EXPECT_FALSE(m.has_predicted_rate());
  EXPECT_THAT(m.note(), HasSubstr("backlog_effective was not read"));
}

}  // namespace
}  // namespace synq::controller::search
