// Proves that a real synq-agent's --metrics-listen endpoint counts what real runs did, in the
// Prometheus text format that Prometheus' own tools accept:
// - two `synq run`s of a never-accepting listener (backlog 2) flooded one connect at a time give
//   the run, flood and connect counters the kernel mechanism predicts;
// - while a run holds its connections the listener's accept-queue gauges show the full queue,
//   labelled by listener and address, and they are gone once the run ends;
// - `promtool check metrics` passes the scraped text (during and after a run);
// - a real Prometheus server scraping the agent stores synq_build_info and the runs counter with
//   the values the test derived (version as GetHostInfo reports it, 2 runs).
// Everything listens on 127.0.0.1 (ports chosen by the kernel and read back); the agent runs in
// the root namespace and changes no setting.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The listener's backlog: a never-accepting listener holds backlog + 1 connections (the kernel
// drops a SYN once sk_ack_backlog > sk_max_ack_backlog, with sk_max_ack_backlog = min(backlog,
// somaxconn) and somaxconn far above 2 here).
constexpr int kBacklog = 2;
// Connections per flood, one at a time: kBacklog + 1 are established into the queue, every later
// SYN is dropped and its connect times out (connect_timeout 300 ms, under the 1 s SYN RTO, so
// no retransmission reaches the listener either).
constexpr int kConnections = 6;
constexpr int kEstablished = kBacklog + 1;
constexpr int kTimedOut = kConnections - kEstablished;
constexpr int kRuns = 2;

// "HOST:PORT" -> an HTTP client for it.
std::unique_ptr<httplib::Client> ClientFor(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return nullptr;
  }
  auto client = std::make_unique<httplib::Client>(address.substr(0, colon), port);
  client->set_connection_timeout(seconds(2));
  client->set_read_timeout(seconds(5));
  return client;
}

// The value of the series whose text (name and labels as rendered) starts with `series`.
std::optional<double> Value(const std::string& exposition, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, series)) continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space != absl::string_view::npos && absl::SimpleAtod(line.substr(space + 1), &value)) {
      return value;
    }
  }
  return std::nullopt;
}

class AgentMetrics : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = dir_.path() + "/agent.sock";
    agent_ =
        Spawn({Binary("agent/synq-agent"), "--listen", "unix:" + socket_, "--state-dir",
               dir_.path() + "/state", "--port-file", dir_.path() + "/addr", "--metrics-listen",
               "127.0.0.1:0", "--metrics-port-file", dir_.path() + "/metrics-addr"},
              dir_.path() + "/agent.log");
    ASSERT_FALSE(WaitForPortFile(dir_.path() + "/addr").empty()) << "agent did not start";
    metrics_address_ = WaitForPortFile(dir_.path() + "/metrics-addr");
    ASSERT_FALSE(metrics_address_.empty());
    scenario_ = dir_.Write("s.yaml", absl::StrCat(R"(name: metrics
sample_interval: 20ms
hosts:
  h: { agent: "unix:)",
                                                  socket_, R"(" }
listeners:
  - { name: l1, host: h, address: 127.0.0.1, port: 0, backlog: )",
                                                  kBacklog, R"(, accept: never }
floods:
  - { name: f1, host: h, target: l1, connections: )",
                                                  kConnections,
                                                  R"(, concurrency: 1, rate: 0,
      connect_timeout: 300ms, hold: 1s }
)"));
  }
  void TearDown() override {
    if (prometheus_ > 0) {
      kill(prometheus_, SIGTERM);
      if (WaitFor(prometheus_, seconds(10)) == -1) {
        kill(prometheus_, SIGKILL);
        WaitFor(prometheus_, seconds(5));
      }
    }
    if (agent_ > 0) {
      kill(agent_, SIGTERM);
      WaitFor(agent_, seconds(10));
    }
    // dir_ (the agent's state and Prometheus' data dir) goes with the fixture.
  }

  std::string Scrape() {
    auto client = ClientFor(metrics_address_);
    if (client == nullptr) return "";
    auto response = client->Get("/metrics");
    if (!response || response->status != 200) return "";
    EXPECT_TRUE(absl::StartsWith(response->get_header_value("Content-Type"), "text/plain"));
    return response->body;
  }

  // `promtool check metrics` on `exposition`: its exit code and what it printed.
  ProcessResult Promtool(const std::string& exposition) {
    const std::string file = dir_.Write("scrape.txt", exposition);
    return RunProcess({"/bin/sh", "-c", absl::StrCat("promtool check metrics < '", file, "'")},
                      seconds(20));
  }

  TempDir dir_;
  pid_t agent_ = -1;
  pid_t prometheus_ = -1;
  std::string socket_;
  std::string metrics_address_;
  std::string scenario_;
};

TEST_F(AgentMetrics, RealRunsCountedGaugesWhileRunningPromtoolCleanPrometheusScrapes) {
  if (!std::filesystem::exists("/usr/bin/promtool") ||
      !std::filesystem::exists("/usr/bin/prometheus")) {
    GTEST_SKIP() << "needs Debian's prometheus package (promtool, prometheus): .ci/dev setup";
  }
  // Before any run: the counters exist at 0 and nothing is sampled.
  const std::string idle = Scrape();
  ASSERT_FALSE(idle.empty()) << "no /metrics at " << metrics_address_;
  EXPECT_EQ(Value(idle, "synq_runs_begun_total "), 0);
  EXPECT_EQ(Value(idle, "synq_serving "), 1);
  EXPECT_EQ(Value(idle, "synq_restores_total{phase=\"start\"} "), 1);
  EXPECT_FALSE(absl::StrContains(idle, "synq_listener_")) << idle;

  // Run 1 in the background: scrape until the queue gauge shows the full accept queue.
  TempDir out1;
  const pid_t synq = Spawn({Binary("controller/synq"), "run", scenario_, "--out", out1.path()},
                           dir_.path() + "/run1.log");
  const std::string gauge =
      "synq_listener_accept_queue_connections{listener=\"l1\",address=\"127.0.0.1:";
  std::string during;
  const auto deadline = std::chrono::steady_clock::now() + seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    during = Scrape();
    if (Value(during, gauge) == kEstablished) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(Value(during, gauge), kEstablished) << during;
  EXPECT_EQ(
      Value(during,
            "synq_listener_accept_queue_max_connections{listener=\"l1\",address=\"127.0.0.1:"),
      kBacklog)
      << during;
  // The dropped SYNs leave no request socket behind.
  EXPECT_EQ(
      Value(during, "synq_listener_syn_recv_connections{listener=\"l1\",address=\"127.0.0.1:"), 0)
      << during;
  EXPECT_EQ(Value(during, "synq_run_open "), 1);
  ProcessResult checked = Promtool(during);
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(absl::StripAsciiWhitespace(checked.output), "") << "promtool lint: " << checked.output;
  ASSERT_EQ(WaitFor(synq, seconds(30)), 0) << "synq run 1 failed; see " << dir_.path();

  // Run 2 in the foreground.
  TempDir out2;
  SynqRun second = RunSynq(scenario_, out2.path());
  ASSERT_EQ(second.exit_code, 0) << second.output;
  ASSERT_EQ(second.result["runs"][0]["floods"]["f1"]["established"], kEstablished) << second.output;

  const std::string after = Scrape();
  EXPECT_EQ(Value(after, "synq_runs_begun_total "), kRuns) << after;
  EXPECT_EQ(Value(after, "synq_runs_ended_total{reason=\"ended_by_controller\"} "), kRuns);
  EXPECT_EQ(Value(after, "synq_run_open "), 0);
  EXPECT_EQ(Value(after, "synq_floods_total{outcome=\"completed\"} "), kRuns);
  EXPECT_EQ(Value(after, "synq_floods_total{outcome=\"failed\"} "), 0);
  EXPECT_EQ(Value(after, "synq_connect_attempts_total "), kRuns * kConnections);
  EXPECT_EQ(Value(after, "synq_connects_total{outcome=\"established\"} "), kRuns * kEstablished);
  EXPECT_EQ(Value(after, "synq_connects_total{outcome=\"timed_out\"} "), kRuns * kTimedOut);
  EXPECT_EQ(Value(after, "synq_connects_total{outcome=\"refused\"} "), 0);
  EXPECT_EQ(Value(after, "synq_connects_total{outcome=\"reset\"} "), 0);
  EXPECT_EQ(Value(after, "synq_restores_total{phase=\"run_end\"} "), kRuns);
  EXPECT_EQ(Value(after, "synq_restore_failures_total{phase=\"run_end\"} "), 0);
  // The run is over: its listener gauges are gone, not left at their last value.
  EXPECT_FALSE(absl::StrContains(after, "synq_listener_")) << after;
  checked = Promtool(after);
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(absl::StripAsciiWhitespace(checked.output), "") << "promtool lint: " << checked.output;

  // The version as the agent reports it over gRPC (GetHostInfo), to compare with the metric's.
  ProcessResult info = RunProcess({Binary("controller/synq"), "info", "unix:" + socket_});
  std::smatch match;
  ASSERT_TRUE(std::regex_search(info.output, match, std::regex("agent +([0-9][^ \n]*)")))
      << info.output;
  const std::string version = match[1];

  // A real Prometheus scraping the agent every second.
  const std::string config = dir_.Write("prometheus.yml", absl::StrCat(R"(global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: synq-agent
    static_configs:
      - targets: [")",
                                                                       metrics_address_, R"("]
)"));
  const std::string log = dir_.path() + "/prometheus.log";
  prometheus_ = Spawn({"/usr/bin/prometheus", "--config.file=" + config,
                       "--storage.tsdb.path=" + dir_.path() + "/prometheus-data",
                       "--web.listen-address=127.0.0.1:0", "--log.level=info"},
                      log);
  // Prometheus logs the port the kernel gave it: msg="Listening on" address=127.0.0.1:PORT.
  std::string web;
  const auto started_by = std::chrono::steady_clock::now() + seconds(15);
  while (web.empty() && std::chrono::steady_clock::now() < started_by) {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      std::smatch m;
      if (std::regex_search(line, m, std::regex("msg=\"Listening on\" address=([0-9.]+:[0-9]+)"))) {
        web = m[1];
      }
    }
    if (web.empty()) std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_FALSE(web.empty()) << "prometheus did not start; see " << log;
  auto api = ClientFor(web);
  ASSERT_NE(api, nullptr);
  // An instant query's single value, or nullopt while Prometheus has none yet.
  auto query = [&](const std::string& promql) -> std::optional<double> {
    auto response = api->Get("/api/v1/query", httplib::Params{{"query", promql}}, {});
    if (!response || response->status != 200) return std::nullopt;
    const auto body = nlohmann::json::parse(response->body, nullptr, false);
    if (body.is_discarded() || body.value("status", "") != "success") return std::nullopt;
    const auto& result = body["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nullopt;
    double value = 0;
    if (!absl::SimpleAtod(result[0]["value"][1].get<std::string>(), &value)) return std::nullopt;
    return value;
  };
  const std::string build_info =
      absl::StrCat("synq_build_info{job=\"synq-agent\",version=\"", version, "\"}");
  const std::string runs = "synq_runs_begun_total{job=\"synq-agent\"}";
  std::optional<double> got_build;
  std::optional<double> got_runs;
  std::optional<double> got_established;
  const auto scraped_by = std::chrono::steady_clock::now() + seconds(20);
  while (std::chrono::steady_clock::now() < scraped_by) {
    got_build = query(build_info);
    got_runs = query(runs);
    got_established = query("synq_connects_total{job=\"synq-agent\",outcome=\"established\"}");
    if (got_build && got_runs && got_established) break;
    std::this_thread::sleep_for(milliseconds(250));
  }
  EXPECT_EQ(got_build, 1) << "query " << build_info << "; see " << log;
  EXPECT_EQ(got_runs, kRuns) << "query " << runs;
  EXPECT_EQ(got_established, kRuns * kEstablished);
  EXPECT_EQ(query("up{job=\"synq-agent\"}"), 1) << "Prometheus' own view of the scrape";
}

}  // namespace
}  // namespace synq::testing
