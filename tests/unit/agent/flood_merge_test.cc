// Proves that merging a flood's shares is exact: counts and errors add, the merged histograms
// equal one histogram that recorded every share's values, the series merges by second,
// held connections and sockets are all kept, started_at is the earliest, launch_lag_max the
// largest, sources a union, engines a union ("io_uring+epoll"), and open_peak is the max (one
// process) or the sum (processes).
#include "agent/flood/flood_merge.h"

#include <sys/socket.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace synq::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

FloodResult Part(const std::vector<uint64_t>& latencies, uint64_t refused, uint32_t second) {
  FloodResult r;
  r.name = "f";
  r.attempted = latencies.size() + refused;
  r.established = latencies.size();
  r.refused = refused;
  for (uint64_t v : latencies) r.connect_latency_us.Record(v);
  r.series.resize(second);  // index = second
  for (uint32_t i = 0; i < second; ++i) r.series[i].second = i;
  FloodSecond s;
  s.second = second;
  s.launched = r.attempted;
  s.established = r.established;
  s.refused = refused;
  for (uint64_t v : latencies) s.connect_latency_us.Record(v);
  r.series.push_back(s);
  return r;
}

TEST(MergeFloodResults, CountsAddAndHistogramsMergeExactly) {
  FloodResult a = Part({10, 200, 3000, 45000}, 2, 0);
  FloodResult b = Part({11, 999999, 7}, 1, 2);
  FloodResult c = Part({123}, 0, 0);
  a.errors["EADDRNOTAVAIL"] = 3;
  b.errors["EADDRNOTAVAIL"] = 1;
  b.errors["EMFILE"] = 2;
  a.started_at = std::chrono::system_clock::time_point(5s);
  b.started_at = std::chrono::system_clock::time_point(4s);
  c.started_at = std::chrono::system_clock::time_point(6s);
  a.launch_lag_max = 3ms;
  b.launch_lag_max = 9ms;
  a.sources = {"127.0.0.1"};
  b.sources = {"127.0.0.2", "127.0.0.1"};
  a.held = {{"127.0.0.1", "127.0.0.1:80", {40000, 40002}}};
  b.held = {{"127.0.0.2", "127.0.0.1:80", {40001}}};
  a.open_peak = 10;
  b.open_peak = 7;
  b.held_sockets->emplace_back(::socket(AF_INET, SOCK_STREAM, 0));
  b.worker_errors = {"worker 2 of 3 killed by signal 9 after reporting nothing"};

  common::Histogram all;
  for (uint64_t v : {10, 200, 3000, 45000, 11, 999999, 7, 123}) all.Record(v);

  auto merged = MergeFloodResults({a, b, c}, PeakMerge::kMax);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->attempted, 6u + 4u + 1u);
  EXPECT_EQ(merged->established, 8u);
  EXPECT_EQ(merged->refused, 3u);
  EXPECT_EQ(merged->errors.at("EADDRNOTAVAIL"), 4u);
  EXPECT_EQ(merged->errors.at("EMFILE"), 2u);
  EXPECT_EQ(merged->connect_latency_us.buckets(), all.buckets());
  EXPECT_EQ(merged->connect_latency_us.count(), all.count());
  EXPECT_EQ(merged->connect_latency_us.max(), all.max());
  EXPECT_EQ(merged->started_at, std::chrono::system_clock::time_point(4s));
  EXPECT_EQ(merged->launch_lag_max, 9ms);
  EXPECT_THAT(merged->sources, ElementsAre("127.0.0.1", "127.0.0.2"));
  ASSERT_EQ(merged->held.size(), 2u);
  EXPECT_EQ(merged->held_sockets->size(), 1u);
  EXPECT_EQ(merged->open_peak, 10u);
  EXPECT_THAT(merged->worker_errors, ElementsAre(b.worker_errors[0]));
  // Second 0 from a and c, second 2 from b, second 1 seen by none but present (index = second).
  ASSERT_EQ(merged->series.size(), 3u);
  EXPECT_EQ(merged->series[0].launched, 7u);
  EXPECT_EQ(merged->series[0].connect_latency_us.count(), 5u);
  EXPECT_EQ(merged->series[1].second, 1u);
  EXPECT_EQ(merged->series[1].launched, 0u);
  EXPECT_EQ(merged->series[2].refused, 1u);
  EXPECT_EQ(merged->series[2].connect_latency_us.max(), 999999u);

  auto summed = MergeFloodResults({a, b}, PeakMerge::kSum);
  EXPECT_EQ(summed->open_peak, 17u);
}

TEST(MergeFloodResults, EnginesJoinInFirstSeenOrderOnceEach) {
  FloodResult a = Part({10}, 0, 0), b = Part({11}, 0, 0), c = Part({12}, 0, 0);
  a.engine = "io_uring";
  b.engine = "epoll";
  c.engine = "io_uring";
  absl::StatusOr<FloodResult> mixed = MergeFloodResults({a, b, c}, PeakMerge::kMax);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->engine, "io_uring+epoll");
  absl::StatusOr<FloodResult> same = MergeFloodResults({b, b}, PeakMerge::kSum);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->engine, "epoll");
}

TEST(MergeFloodResults, RefusesHistogramsOfDifferentResolution) {
  FloodResult a = Part({10}, 0, 0), b = Part({}, 0, 0);
  b.connect_latency_us = common::Histogram(7);
  b.connect_latency_us.Record(5);
  auto merged = MergeFloodResults({a, b}, PeakMerge::kMax);
  EXPECT_EQ(merged.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace synq::agent
