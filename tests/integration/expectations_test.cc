// Proves that expectations evaluated on the result.json of a real `synq run` (two embedded hosts,
// a never-accepting listener) pass when they state the kernel's accept-queue mechanism and fail,
// with both sides' values, when they state something else.
//
// The mechanism: listen(backlog 4) under somaxconn 16 gives an accept queue limit of
// min(4, 16) = 4; the kernel admits a connection while the queue holds no more than the limit,
// so a listener that never accepts holds limit + 1 = 5. With one connect at a time, each later
// SYN finds the queue full and is dropped (TcpExtListenOverflows), and its connect times out.
#include "controller/verdict/expectations.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "controller/result/result_json.h"
#include "controller/scenario_loader.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

namespace v1 = ::synq::result::v1;
using controller::verdict::CheckExpectations;
using controller::verdict::EvaluateExpectations;
using controller::verdict::RenderExpectations;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int kBacklog = 4;
constexpr int kSomaxconn = 16;
constexpr int kConnections = 10;
constexpr int kHeld = kBacklog + 1;  // min(backlog, somaxconn) + 1

constexpr char kScenario[] = R"(
name: expectations
hosts:
  server: {}
  client: {}
settings:
  server: { net.core.somaxconn: 16 }
listeners:
  - { name: l1, host: server, backlog: 4, accept: never }
floods:
  - { name: f1, host: client, target: l1, connections: 10, concurrency: 1,
      connect_timeout: 1s, hold: 500ms }
expect:
  - floods.f1.established == listeners.l1.backlog_effective + 1
  - hosts.server.counters.TcpExtListenOverflows > 0
  - floods.f1.established == listeners.l1.backlog
  - floods.f1.timed_out == 0 or hosts.server.counters.TcpExtListenOverflows == 0
  - min(listeners.l1.backlog_effective, hosts.server.settings.net.core.somaxconn) == 4 and floods.f1.attempted - floods.f1.established == floods.f1.timed_out
)";

class Expectations : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: embedded hosts are network namespaces";
  }
  TempDir dir_;
};

TEST_F(Expectations, MechanismHoldsOnARealRunAndOtherClaimsFailWithBothValues) {
  const std::string file = dir_.Write("expectations.yaml", kScenario);
  controller::LoadResult loaded = controller::LoadScenarioFile(file);
  ASSERT_TRUE(loaded.ok()) << loaded.errors[0].ToString();
  ASSERT_THAT(CheckExpectations(loaded.scenario), IsEmpty());

  // Two of the expectations are false by design, so synq run exits 1 after the run.
  SynqRun r = RunSynq(file, dir_.path() + "/out");
  ASSERT_EQ(r.exit_code, 1) << r.output;
  absl::StatusOr<v1::Result> result =
      controller::result::ReadResultFile(dir_.path() + "/out/result.json");
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->runs_size(), 1);
  v1::Run run = result->runs(0);
  EvaluateExpectations(loaded.scenario, &run);
  ASSERT_EQ(run.expectations_size(), 5);
  for (const v1::Expectation& e : run.expectations()) EXPECT_THAT(e.error(), IsEmpty());

  // established == backlog_effective + 1: 5 == 4 + 1.
  const v1::Expectation& held = run.expectations(0);
  EXPECT_TRUE(held.passed());
  ASSERT_EQ(held.comparisons_size(), 1);
  EXPECT_EQ(held.comparisons(0).left_value(), kHeld);
  EXPECT_EQ(held.comparisons(0).right_value(), kHeld);
  EXPECT_EQ(held.values().at("listeners.l1.backlog_effective"), kBacklog);

  // Every SYN after the fifth overflowed the accept queue at least once.
  const v1::Expectation& overflows = run.expectations(1);
  EXPECT_TRUE(overflows.passed());
  EXPECT_GE(overflows.comparisons(0).left_value(), kConnections - kHeld);
  EXPECT_EQ(overflows.comparisons(0).right_value(), 0);

  // Forgetting the + 1 fails: 5 == 4.
  const v1::Expectation& off_by_one = run.expectations(2);
  EXPECT_FALSE(off_by_one.passed());
  EXPECT_EQ(off_by_one.comparisons(0).left_value(), kHeld);
  EXPECT_EQ(off_by_one.comparisons(0).right_value(), kBacklog);
  EXPECT_FALSE(off_by_one.comparisons(0).passed());

  // Both halves of the or are false: 5 timed out, overflows counted.
  const v1::Expectation& neither = run.expectations(3);
  EXPECT_FALSE(neither.passed());
  ASSERT_EQ(neither.comparisons_size(), 2);
  EXPECT_EQ(neither.comparisons(0).left_value(), kConnections - kHeld);
  EXPECT_FALSE(neither.comparisons(0).passed());
  EXPECT_FALSE(neither.comparisons(1).passed());

  // min(4, somaxconn 16) == 4, and 10 - 5 == 5 timed out.
  const v1::Expectation& arithmetic = run.expectations(4);
  EXPECT_TRUE(arithmetic.passed());
  EXPECT_EQ(arithmetic.values().at("hosts.server.settings.net.core.somaxconn"), kSomaxconn);
  EXPECT_EQ(arithmetic.comparisons(1).left_value(), kConnections - kHeld);

  const std::string table = RenderExpectations(run);
  std::fprintf(stderr, "%s", table.c_str());  // for the test log
  EXPECT_THAT(table,
              HasSubstr("PASS  floods.f1.established == listeners.l1.backlog_effective + 1"));
  EXPECT_THAT(table, HasSubstr("(5 == 5)"));
  EXPECT_THAT(table, HasSubstr("FAIL  floods.f1.established == listeners.l1.backlog"));
  EXPECT_THAT(table, HasSubstr("(5 == 4)"));
}

}  // namespace
}  // namespace synq::testing
