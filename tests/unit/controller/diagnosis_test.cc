// Proves the accept-queue overflow finding on typed runs without a network: it states the
// kernel's limit (backlog_effective + 1) and the measured peak, and only a peak above the limit
// adds why that can happen (final ACKs on several CPUs passing the fullness check at once).
#include "controller/verdict/diagnosis.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace synq::controller::verdict {
namespace {

namespace v1 = ::synq::result::v1;
using ::testing::HasSubstr;
using ::testing::Not;

// A never-accepting listener with backlog 3 on `server`, whose queue peaked at `peak`, and
// the server's overflow counter.
v1::Run OverflowRun(int peak) {
  v1::Run run;
  v1::Host& server = (*run.mutable_hosts())["server"];
  (*server.mutable_counters())["TcpExtListenOverflows"] = 28;
  (*server.mutable_counters())["TcpExtListenDrops"] = 28;
  v1::Listener& l = (*run.mutable_listeners())["l1"];
  l.set_host("server");
  l.set_backlog(3);
  l.set_backlog_effective(3);
  l.set_accept_queue_peak(peak);
  l.set_accepted(0);
  l.set_accept(v1::ACCEPT_MODE_NEVER);
  return run;
}

std::string OverflowText(const v1::Run& run) {
  for (const v1::Finding& f : Diagnose(run)) {
    if (f.rule() == kRuleAcceptQueueOverflow) return f.text();
  }
  return "";
}

TEST(Diagnosis, AQueueAtItsLimitIsExplainedByTheRuleAlone) {
  const std::string text = OverflowText(OverflowRun(4));
  EXPECT_THAT(text, HasSubstr("holds backlog_effective + 1 = 4 connections"));
  EXPECT_THAT(text, HasSubstr("it peaked at 4"));
  EXPECT_THAT(text, Not(HasSubstr("several CPUs")));
}

TEST(Diagnosis, APeakAboveTheLimitSaysFinalAcksRacedOnSeveralCpus) {
  const std::string text = OverflowText(OverflowRun(5));
  EXPECT_THAT(text, HasSubstr("it peaked at 5"));
  EXPECT_THAT(text, HasSubstr("final ACKs handled at once on several CPUs"));
}

}  // namespace
}  // namespace synq::controller::verdict
