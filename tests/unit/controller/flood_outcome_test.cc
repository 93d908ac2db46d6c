// Proves which floods fail their host after a run (FloodsThatOnlyFailed): one whose every
// attempt ended in an errno of its own, unless an expect: line asks about its errors; a flood
// with any measured outcome (established, refused, reset, timed out) never does.
#include <gtest/gtest.h>

#include <string>

#include "controller/run/phases.h"
#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

namespace rv1 = ::synq::result::v1;

Scenario Load(const std::string& expect) {
  LoadResult loaded = LoadScenario(R"(name: t
floods:
  - { name: f1, target: "127.0.0.1:9", connections: 5 }
  - { name: f2, target: "127.0.0.1:9", connections: 5 }
)" + expect);
  EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
  return loaded.scenario;
}

rv1::Run WithFlood(const std::string& name, uint32_t attempted, uint32_t refused,
                   std::map<std::string, uint32_t> errors) {
  rv1::Run run;
  rv1::Flood& f = (*run.mutable_floods())[name];
  f.set_attempted(attempted);
  f.set_refused(refused);
  f.set_target("127.0.0.1:9");
  for (const auto& [k, n] : errors) (*f.mutable_errors())[k] = n;
  return run;
}

TEST(FloodsThatOnlyFailed, EveryAttemptALocalErrorFailsTheHostNamingFloodAndErrnos) {
  const auto failures = FloodsThatOnlyFailed(
      Load(""), WithFlood("f1", 5, 0, {{"ENETUNREACH", 3}, {"EADDRNOTAVAIL", 2}}));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].host, "local");
  EXPECT_NE(failures[0].message.find("floods.f1: every attempt failed with a local error "
                                     "(EADDRNOTAVAIL 2, ENETUNREACH 3 of 5 attempted"),
            std::string::npos)
      << failures[0].message;
}

TEST(FloodsThatOnlyFailed, AnyMeasuredOutcomeOrNoAttemptIsNotAFailure) {
  EXPECT_TRUE(FloodsThatOnlyFailed(Load(""), WithFlood("f1", 5, 1, {{"EPERM", 4}})).empty());
  EXPECT_TRUE(FloodsThatOnlyFailed(Load(""), WithFlood("f1", 0, 0, {})).empty());
  EXPECT_TRUE(FloodsThatOnlyFailed(Load(""), WithFlood("f1", 5, 5, {})).empty());
}

TEST(FloodsThatOnlyFailed, AnExpectationOnThatFloodsErrorsMakesItTheOutcomeUnderTest) {
  const rv1::Run run = WithFlood("f1", 5, 0, {{"EPERM", 5}});
  EXPECT_TRUE(
      FloodsThatOnlyFailed(Load("expect:\n  - floods.f1.errors.EPERM == 5\n"), run).empty());
  EXPECT_TRUE(FloodsThatOnlyFailed(Load("expect:\n  - floods.f1.fates.error == 5\n"), run).empty());
  // An expectation about another flood, or about this flood's other figures, is not.
  EXPECT_EQ(FloodsThatOnlyFailed(Load("expect:\n  - floods.f2.errors.EPERM == 0\n"), run).size(),
            1u);
  EXPECT_EQ(FloodsThatOnlyFailed(Load("expect:\n  - floods.f1.established == 0\n"), run).size(),
            1u);
}

}  // namespace
}  // namespace synq::controller
