// Proves, with the real synq and real agents on embedded namespace hosts, what the `expect:`
// lines of examples/knee-search.yaml cannot state: every failing trial against a paced listener
// lost the number of connections the accept-queue mechanism implies, each lost SYN is both a
// server-side listen drop and a client timeout, the table and report.html show the search; a pdr
// search's knee follows its loss tolerance as the same mechanism implies; a search against an
// immediate listener reports its knee with a note and no invented prediction; and
// `synq validate` rejects a bad search section naming the field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "controller/result/result_json.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

namespace v1 = ::synq::result::v1;
using ::testing::HasSubstr;

class KneeSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: embedded hosts are network namespaces";
  }
  TempDir dir_;
};

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_F(KneeSearch, FailingTrialsLoseWhatTheAcceptQueueImplies) {
  // mu = 50/s (20 ms), K = backlog 32 + 1 = 33, T = 1 s.
  const std::string file = dir_.Write("knee.yaml", R"(
name: knee-drops
hosts: { server: {}, client: {} }
settings: { server: { net.core.somaxconn: 1024 } }
listeners: [{ name: l1, host: server, backlog: 32, accept: paced, accept_interval: 20ms }]
floods: [{ name: f1, host: client, target: l1, concurrency: 1000, connect_timeout: 500ms,
           hold: 0s }]
search: { flood: f1, trial: 1s, start: 50, max: 1000, precision: 8 }
)");
  const std::string out = dir_.path() + "/out";
  SynqRun r = RunSynq(file, out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto result = controller::result::ReadResultFile(out + "/result.json");
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->runs_size(), 1);
  const v1::Search& s = result->runs(0).search();
  ASSERT_GE(s.trials_size(), 4) << r.output;
  int failing = 0;
  for (const v1::SearchTrial& t : s.trials()) {
    SCOPED_TRACE(t.rate());
    ASSERT_TRUE(t.has_server_drops()) << "the server host has an agent";
    if (t.passed()) {
      EXPECT_EQ(t.server_drops(), 0);
      EXPECT_EQ(t.established(), t.attempted());
      continue;
    }
    ++failing;
    // N = rate x T arrivals; the listener takes at most mu T + 1 of them during the window (one
    // tick at each end) and the queue holds K, so at least N - mu T - 1 - K are dropped. Each
    // accept held back by a scheduling stall of the listener leaves one more: we allow 20% of
    // mu T (stalls adding up to 200 ms in a trial).
    const double n = t.attempted();
    EXPECT_GE(t.server_drops(), n - 50 - 1 - 33);
    EXPECT_LE(t.server_drops(), n - 50 - 33 + 10);
    // A dropped SYN is retransmitted after 1 s, past connect_timeout 500 ms: the client times out
    // on it. A final ACK dropped on overflow leaves the client established instead, so timeouts
    // never exceed the server's drops.
    EXPECT_LE(t.timed_out(), t.server_drops());
    EXPECT_GE(t.timed_out() + 2, t.server_drops());
    EXPECT_EQ(t.reset() + t.refused() + t.errors(), 0u);
  }
  EXPECT_GE(failing, 1);
  // The table and the report show the search.
  EXPECT_THAT(r.output, HasSubstr("search f1 (ndr"));
  EXPECT_THAT(r.output, HasSubstr("model: predicted 83/s"));
  const std::string html = ReadText(out + "/report.html");
  EXPECT_THAT(html, HasSubstr("<h3>Knee search</h3>"));
  EXPECT_THAT(html, HasSubstr("svg class=\"plot search\""));
  EXPECT_THAT(html, HasSubstr("lambda* = mu + K/T = 83/s"));
}

TEST_F(KneeSearch, PdrKneeFollowsTheLossTolerance) {
  // mu = 50/s, K = 33, T = 1 s, loss 10%: above the no-drop knee a trial drops (lambda - mu) T - K
  // (a dropped SYN's retransmit comes after 1 s, past connect_timeout, so it adds no arrival);
  // that stays within 10% of lambda T up to lambda* = (50 + 33) / 0.9 = 92.2/s. The knee lies in
  // (lambda* - precision - 0.2 mu, lambda* + 1]: the precision, ticks lost to stalls (as above),
  // and whole connections.
  const std::string file = dir_.Write("pdr.yaml", R"(
name: knee-pdr
hosts: { server: {}, client: {} }
settings: { server: { net.core.somaxconn: 1024 } }
listeners: [{ name: l1, host: server, backlog: 32, accept: paced, accept_interval: 20ms }]
floods: [{ name: f1, host: client, target: l1, concurrency: 1000, connect_timeout: 500ms,
           hold: 0s }]
search: { flood: f1, criterion: pdr, loss: 10%, trial: 1s, start: 50, max: 1000, precision: 4 }
)");
  const std::string out = dir_.path() + "/out";
  SynqRun r = RunSynq(file, out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto result = controller::result::ReadResultFile(out + "/result.json");
  ASSERT_TRUE(result.ok()) << result.status();
  const v1::Search& s = result->runs(0).search();
  EXPECT_EQ(s.criterion(), "pdr");
  EXPECT_EQ(s.loss_percent(), 10);
  ASSERT_TRUE(s.model().has_predicted_rate());
  EXPECT_NEAR(s.model().predicted_rate(), 83 / 0.9, 1e-9);
  ASSERT_TRUE(s.has_knee_rate()) << r.output;
  EXPECT_LE(s.knee_rate(), 83 / 0.9 + 1);
  EXPECT_GT(s.knee_rate(), 83 / 0.9 - 4 - 10);
  // Above the ndr knee (83/s) but within the tolerance, a trial passed with some loss.
  bool lossy_pass = false;
  for (const v1::SearchTrial& t : s.trials()) {
    EXPECT_EQ(t.passed(), t.loss_percent() <= 10) << t.rate() << " " << t.reason();
    lossy_pass |= t.passed() && t.loss_percent() > 0;
  }
  EXPECT_TRUE(lossy_pass) << r.output;
}

TEST_F(KneeSearch, ImmediateListenerGetsNoInventedPrediction) {
  // An immediate listener keeps up with a few hundred connects/s: both trials pass, the search
  // stops at max, and the model says why it has no prediction.
  const std::string file = dir_.Write("immediate.yaml", R"(
name: knee-immediate
hosts: { server: {}, client: {} }
listeners: [{ name: l1, host: server, backlog: 128, accept: immediate }]
floods: [{ name: f1, host: client, target: l1, concurrency: 200, hold: 0s }]
search: { flood: f1, trial: 500ms, start: 100, max: 200, precision: 50 }
)");
  const std::string out = dir_.path() + "/out";
  SynqRun r = RunSynq(file, out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto result = controller::result::ReadResultFile(out + "/result.json");
  ASSERT_TRUE(result.ok()) << result.status();
  const v1::Search& s = result->runs(0).search();
  EXPECT_EQ(s.trials_size(), 2);
  EXPECT_EQ(s.knee_rate(), 200);
  EXPECT_THAT(s.note(), HasSubstr("at or above"));
  EXPECT_FALSE(s.model().has_predicted_rate());
  EXPECT_FALSE(s.model().has_error_percent());
  EXPECT_THAT(s.model().note(), HasSubstr("accepts immediately"));
  EXPECT_GT(s.search_ms(), 0);
}

TEST_F(KneeSearch, ValidateNamesTheBadField) {
  const std::string file = dir_.Write("bad.yaml", R"(
name: bad
listeners: [{ name: l1 }]
floods: [{ name: f1, target: l1 }]
search: { flood: f1, loss: 1%, start: 500, max: 100 }
)");
  ProcessResult r = RunProcess({Binary("controller/synq"), "validate", file});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("search.loss: only used with criterion: pdr"));
  EXPECT_THAT(r.output, HasSubstr("search.max: must be at least start (500), got 100"));
}

}  // namespace
}  // namespace synq::testing
