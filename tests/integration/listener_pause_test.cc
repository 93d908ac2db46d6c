// Proves, through the real synq and real agents in namespace hosts, that a paced listener given
// `accept_rate` accepts on its schedule, that a `pause` stops it accepting (its accept queue
// rises in the samples while connections keep arriving) and that it resumes afterwards; and that
// the fate join tells accepted from queued sockets by what sock_diag reports.
#include <gtest/gtest.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using json = nlohmann::json;

class ListenerPause : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: embedded hosts are network namespaces";
  }
  TempDir out_;
};

// Figures of the scenario below.
constexpr double kRate = 40;           // accept_rate, accepts/s
constexpr double kArrivals = 100;      // flood rate, connects/s
constexpr int64_t kConnections = 400;  // launched over 4 s
constexpr int64_t kBacklog = 100;      // under the namespace's somaxconn (4096)
constexpr double kPause1At = 1.0, kPause1For = 1.5;
constexpr double kStopAt = 3.5;  // second pause: from here to the end of the run

// l1's samples (the server host's): (seconds from the flood start, accept queue).
std::vector<std::pair<double, int64_t>> QueueSamples(const json& run) {
  std::vector<std::pair<double, int64_t>> out;
  for (const json& s : run["samples"]) {
    const json listeners = s.value("listeners", json::object());
    if (!listeners.contains("l1")) continue;
    out.emplace_back(s["t_ms"].get<double>() / 1000,
                     listeners["l1"].value("accept_queue", int64_t{0}));
  }
  return out;
}

// The queue of the last sample at or before t seconds; -1 when there is none.
int64_t QueueAt(const std::vector<std::pair<double, int64_t>>& samples, double t) {
  int64_t q = -1;
  for (const auto& [at, queue] : samples) {
    if (at <= t) q = queue;
  }
  return q;
}

TEST_F(ListenerPause, PacedListenerAcceptsAtItsRateOutsidePausesAndItsQueueRisesDuringThem) {
  // Arrivals (100/s) outrun accepts (40/s), so once the first connection is in, the queue never
  // empties while the listener accepts. The listener accepts in [0, 1 s) and [2.5 s, 4 s) after
  // the flood start and never again (the second pause lasts past the run), so whatever the
  // collection time: accepted = rate x (3.5 s - 1.5 s paused) = 80, +-1 per window edge.
  // connect_timeout 900 ms is shorter than the first SYN retransmit (1 s): a connect whose SYN
  // meets a full accept queue (dropped) times out instead of trying again. The queue holds at
  // most backlog_effective + 1 and is full at the end (it fills during the first pause:
  // 60 + 150 arrivals > 101; from 2.5 s on arrivals outrun accepts; arrivals go on to 4 s, past
  // the last accept at 3.5 s), so
  // established = accepted + backlog_effective + 1 and the rest time out.
  const std::string scenario = out_.Write("pause.yaml", R"(name: listener-pause
sample_interval: 50ms
hosts: { server: {}, client: {} }
listeners:
  - { name: l1, host: server, backlog: 100, accept: paced, accept_rate: 40,
      pause: [ { at: 1s, for: 1500ms }, { at: 3500ms, for: 3600s } ] }
floods:
  - { name: f1, host: client, target: l1, connections: 400, concurrency: 400, rate: 100,
      connect_timeout: 900ms, hold: 300ms }
)");
  SynqRun r = RunSynq(scenario, out_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(r.result.is_object()) << r.output;
  const json& run = r.result["runs"][0];
  const json& l1 = run["listeners"]["l1"];
  const json& f1 = run["floods"]["f1"];

  EXPECT_EQ(l1["accept_rate"].get<double>(), kRate);
  const int64_t effective = l1["backlog_effective"].get<int64_t>();
  ASSERT_EQ(effective, kBacklog);
  const int64_t queue_bound = effective + 1;

  const double active = kStopAt - kPause1For;
  const int64_t accepted = l1["accepted"].get<int64_t>();
  EXPECT_NEAR(static_cast<double>(accepted), kRate * active, 2.0);

  EXPECT_EQ(f1["attempted"].get<int64_t>(), kConnections);
  EXPECT_EQ(f1["established"].get<int64_t>(), accepted + queue_bound);
  EXPECT_EQ(f1["timed_out"].get<int64_t>(), kConnections - accepted - queue_bound);
  EXPECT_EQ(l1["accept_queue_peak"].get<int64_t>(), queue_bound);

  // The fate join agrees: sockets with an inode were accepted, the rest wait in the queue.
  EXPECT_EQ(f1["fates"].value("accepted", int64_t{0}), accepted);
  EXPECT_EQ(f1["fates"].value("queued", int64_t{0}), queue_bound);

  // Before the pause the queue grows by arrivals - accepts: about (100 - 40) x 1 s = 60.
  const auto samples = QueueSamples(run);
  const int64_t before = QueueAt(samples, kPause1At);
  EXPECT_NEAR(static_cast<double>(before), (kArrivals - kRate) * kPause1At, 12.0);
  // During the pause nothing is accepted: the samples only rise, up to the bound.
  int64_t last = before;
  int64_t top = before;
  int rising_samples = 0;
  for (const auto& [t, q] : samples) {
    if (t <= kPause1At + 0.03 || t >= kPause1At + kPause1For - 0.03) continue;
    EXPECT_GE(q, last) << "the queue fell at t=" << t << " s during the pause";
    if (q > last) ++rising_samples;
    last = q;
    top = std::max(top, q);
  }
  EXPECT_GT(rising_samples, 3);
  EXPECT_EQ(top, queue_bound);
}

}  // namespace
}  // namespace synq::testing
