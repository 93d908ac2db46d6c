// Proves that AgentMetrics renders the Prometheus text format by its rules: label values escape
// backslash, quote and newline; every sample follows its family's HELP and TYPE lines and
// counters end in _total; flood outcomes add up across floods (other errnos into "error" and by
// name); listener gauges exist only for sampled listeners of the open run and disappear when
// the listener stops or the run ends. (Real runs, promtool and a Prometheus scrape:
// tests/integration/agent_metrics_test.cc.)
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "agent/metrics/agent_metrics.h"

namespace synq::agent {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Sample lines of `text` as series -> value text.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    const size_t space = line.rfind(' ');
    out[std::string(line.substr(0, space))] = std::string(line.substr(space + 1));
  }
  return out;
}

TEST(AgentMetrics, LabelValuesEscapeBackslashQuoteAndNewline) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeLabelValue("plain 1.2.3"), "plain 1.2.3");
  AgentMetrics metrics(Labels{{"version", "1\"2"}});
  metrics.RunBegun();
  metrics.ListenerAdded("we\"ird\\name", "127.0.0.1:80");
  metrics.ListenersSampled({{"we\"ird\\name", ListenQueue{1, 2, 3}}});
  const auto samples = Samples(metrics.Render());
  EXPECT_EQ(samples.at("synq_build_info{version=\"1\\\"2\"}"), "1");
  EXPECT_EQ(samples.at("synq_listener_syn_recv_connections{listener=\"we\\\"ird\\\\name\","
                       "address=\"127.0.0.1:80\"}"),
            "3");
}

TEST(AgentMetrics, EverySampleFollowsHelpAndTypeAndCountersEndInTotal) {
  AgentMetrics metrics(Labels{{"version", "0"}});
  metrics.RunBegun();
  metrics.ListenerAdded("l1", "127.0.0.1:80");
  metrics.ListenersSampled({{"l1", ListenQueue{}}});
  FloodResult result;
  result.errors["EADDRNOTAVAIL"] = 1;
  metrics.FloodFinished(result);
  std::map<std::string, std::string> type_of;
  std::set<std::string> helped;
  for (absl::string_view line : absl::StrSplit(metrics.Render(), '\n', absl::SkipEmpty())) {
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    if (absl::StartsWith(line, "# HELP ")) {
      EXPECT_TRUE(helped.insert(words[2]).second) << "two HELP lines for " << words[2];
      continue;
    }
    if (absl::StartsWith(line, "# TYPE ")) {
      EXPECT_TRUE(helped.count(words[2])) << "TYPE before HELP: " << line;
      type_of[words[2]] = words[3];
      if (words[3] == "counter") {
        EXPECT_TRUE(absl::EndsWith(words[2], "_total")) << words[2];
      }
      continue;
    }
    const std::string name(line.substr(0, line.find_first_of("{ ")));
    EXPECT_TRUE(type_of.count(name)) << "sample without TYPE: " << line;
  }
  EXPECT_EQ(type_of.at("synq_runs_begun_total"), "counter");
  EXPECT_EQ(type_of.at("synq_listener_accept_queue_connections"), "gauge");
  EXPECT_EQ(type_of.at("synq_build_info"), "gauge");
}

TEST(AgentMetrics, FloodOutcomesAddUpAcrossFloods) {
  AgentMetrics metrics(Labels{});
  FloodResult a;
  a.attempted = 10;
  a.established = 4;
  a.timed_out = 3;
  a.errors["EADDRNOTAVAIL"] = 2;
  a.errors["ENETUNREACH"] = 1;
  FloodResult b;
  b.attempted = 5;
  b.refused = 4;
  b.reset = 1;
  b.errors["EADDRNOTAVAIL"] = 0;
  metrics.FloodFinished(a);
  metrics.FloodFinished(b);
  metrics.FloodFailed();
  const auto samples = Samples(metrics.Render());
  EXPECT_EQ(samples.at("synq_floods_total{outcome=\"completed\"}"), "2");
  EXPECT_EQ(samples.at("synq_floods_total{outcome=\"failed\"}"), "1");
  EXPECT_EQ(samples.at("synq_connect_attempts_total"), "15");
  EXPECT_EQ(samples.at("synq_connects_total{outcome=\"established\"}"), "4");
  EXPECT_EQ(samples.at("synq_connects_total{outcome=\"refused\"}"), "4");
  EXPECT_EQ(samples.at("synq_connects_total{outcome=\"reset\"}"), "1");
  EXPECT_EQ(samples.at("synq_connects_total{outcome=\"timed_out\"}"), "3");
  EXPECT_EQ(samples.at("synq_connects_total{outcome=\"error\"}"), "3");
  EXPECT_EQ(samples.at("synq_connect_errors_total{errno=\"EADDRNOTAVAIL\"}"), "2");
  EXPECT_EQ(samples.at("synq_connect_errors_total{errno=\"ENETUNREACH\"}"), "1");
}

TEST(AgentMetrics, ListenerGaugesOnlyWhileSampledAndGoneWhenStoppedOrRunEnds) {
  AgentMetrics metrics(Labels{});
  metrics.RunBegun();
  metrics.ListenerAdded("l1", "127.0.0.1:80");
  metrics.ListenerAdded("l2", "[::1]:81");
  // Added but not sampled yet: no value (never a made-up 0).
  EXPECT_FALSE(absl::StrContains(metrics.Render(), "synq_listener_"));
  metrics.ListenersSampled({{"l1", ListenQueue{5, 8, 2}}, {"l2", ListenQueue{0, 4, 0}}});
  auto samples = Samples(metrics.Render());
  EXPECT_EQ(samples.at(
                "synq_listener_accept_queue_connections{listener=\"l1\",address=\"127.0.0.1:80\"}"),
            "5");
  EXPECT_EQ(samples.at("synq_listener_accept_queue_max_connections{listener=\"l1\","
                       "address=\"127.0.0.1:80\"}"),
            "8");
  EXPECT_EQ(samples.at("synq_listener_syn_recv_connections{listener=\"l2\",address=\"[::1]:81\"}"),
            "0");
  // A sample that no longer sees l2 (its owner closed it): l2's gauges go.
  metrics.ListenersSampled({{"l1", ListenQueue{6, 8, 0}}});
  samples = Samples(metrics.Render());
  EXPECT_EQ(samples.count("synq_listener_accept_queue_connections{listener=\"l2\","
                          "address=\"[::1]:81\"}"),
            0u);
  EXPECT_EQ(samples.at(
                "synq_listener_accept_queue_connections{listener=\"l1\",address=\"127.0.0.1:80\"}"),
            "6");
  metrics.ListenerRemoved("l1");
  EXPECT_FALSE(absl::StrContains(metrics.Render(), "synq_listener_"));
  metrics.ListenerAdded("l3", "127.0.0.1:82");
  metrics.ListenersSampled({{"l3", ListenQueue{1, 1, 1}}});
  metrics.RunEnded(RunEndReason::kLeaseExpired);
  samples = Samples(metrics.Render());
  EXPECT_FALSE(absl::StrContains(metrics.Render(), "synq_listener_"));
  EXPECT_EQ(samples.at("synq_runs_ended_total{reason=\"lease_expired\"}"), "1");
  EXPECT_EQ(samples.at("synq_runs_ended_total{reason=\"ended_by_controller\"}"), "0");
  EXPECT_EQ(samples.at("synq_run_open"), "0");
}

TEST(AgentMetrics, RestoresAndFailuresCountedByPhase) {
  AgentMetrics metrics(Labels{});
  metrics.RestoreDone(RestorePhase::kStart, false);
  metrics.RestoreDone(RestorePhase::kRunEnd, true);
  metrics.RestoreDone(RestorePhase::kRunEnd, true);
  metrics.SetServing(false);
  const auto samples = Samples(metrics.Render());
  EXPECT_EQ(samples.at("synq_restores_total{phase=\"start\"}"), "1");
  EXPECT_EQ(samples.at("synq_restore_failures_total{phase=\"start\"}"), "1");
  EXPECT_EQ(samples.at("synq_restores_total{phase=\"run_end\"}"), "2");
  EXPECT_EQ(samples.at("synq_restore_failures_total{phase=\"run_end\"}"), "0");
  EXPECT_EQ(samples.at("synq_serving"), "0");
}

}  // namespace
}  // namespace synq::agent
