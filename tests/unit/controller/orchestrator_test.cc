// Proves the controller's pure pieces: the per-connection fate join, the clock-offset estimate
// (with a fake agent clock), typed sweep params, and the terminal table.
#include "controller/orchestrator.h"

#include <gtest/gtest.h>

#include <thread>

#include "controller/report.h"
#include "proto/proto_time.h"

namespace synq::controller {
namespace {

using std::chrono::milliseconds;

v1::ConnectionRecord Attempt(v1::Outcome outcome, const std::string& local) {
  v1::ConnectionRecord r;
  r.set_outcome(outcome);
  r.set_local(local);
  r.set_remote("198.18.0.2:5000");
  return r;
}

v1::ServerSocket Server(const std::string& remote, const std::string& state, bool accepted) {
  v1::ServerSocket s;
  s.set_local("198.18.0.2:5000");
  s.set_remote(remote);
  s.set_state(state);
  s.set_accepted(accepted);
  return s;
}

TEST(ConnectionFate, JoinsClientAttemptsWithTheServerViewByFourTuple) {
  const v1::ServerSocket accepted = Server("198.18.0.3:1001", "ESTABLISHED", true);
  const v1::ServerSocket queued = Server("198.18.0.3:1002", "ESTABLISHED", false);
  const v1::ServerSocket syn_recv = Server("198.18.0.3:1003", "SYN_RECV", false);
  std::map<std::pair<std::string, std::string>, const v1::ServerSocket*> by_tuple;
  for (const auto* s : {&accepted, &queued, &syn_recv}) by_tuple[{s->local(), s->remote()}] = s;

  EXPECT_EQ(ConnectionFate(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1001"), by_tuple),
            "accepted");
  EXPECT_EQ(ConnectionFate(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1002"), by_tuple),
            "queued");
  EXPECT_EQ(ConnectionFate(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1003"), by_tuple),
            "syn_recv");
  EXPECT_EQ(ConnectionFate(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1004"), by_tuple),
            "unknown_to_server");
}

TEST(ConnectionFate, UnconnectedAttemptsKeepTheirClientOutcome) {
  std::map<std::pair<std::string, std::string>, const v1::ServerSocket*> none;
  EXPECT_EQ(ConnectionFate(Attempt(v1::OUTCOME_TIMED_OUT, "198.18.0.3:1"), none), "timed_out");
  EXPECT_EQ(ConnectionFate(Attempt(v1::OUTCOME_RESET, "198.18.0.3:1"), none), "reset");
  EXPECT_EQ(ConnectionFate(Attempt(v1::OUTCOME_REFUSED, "198.18.0.3:1"), none), "refused");
  EXPECT_EQ(ConnectionFate(Attempt(v1::OUTCOME_ERROR, "198.18.0.3:1"), none), "error");
}

// An agent whose clock runs `offset` ahead and whose GetClock takes `delay` to answer.
class FakeClockAgent : public AgentClient {
 public:
  FakeClockAgent(std::chrono::nanoseconds offset, milliseconds delay)
      : offset_(offset), delay_(delay) {}
  const std::string& address() const override { return address_; }
  absl::StatusOr<v1::GetClockResponse> GetClock() override {
    std::this_thread::sleep_for(delay_);
    v1::GetClockResponse r;
    proto::ToProto(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(offset_),
                   r.mutable_now());
    std::this_thread::sleep_for(delay_);
    return r;
  }
  absl::StatusOr<v1::HostInfo> GetHostInfo() override { return Unused(); }
  absl::Status BeginRun(const v1::BeginRunRequest&) override { return Unused(); }
  absl::StatusOr<v1::ApplySettingsResponse> ApplySettings(
      const v1::ApplySettingsRequest&) override {
    return Unused();
  }
  absl::StatusOr<v1::ApplyShapingResponse> ApplyShaping(const v1::ApplyShapingRequest&) override {
    return Unused();
  }
  absl::StatusOr<v1::StartListenerResponse> StartListener(
      const v1::StartListenerRequest&) override {
    return Unused();
  }
  absl::StatusOr<v1::StartCaptureResponse> StartCapture(const v1::StartCaptureRequest&) override {
    return Unused();
  }
  absl::Status StartFloods(const v1::StartFloodsRequest&) override { return Unused(); }
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(
      const std::string&, std::function<void(const v1::Sample&)>) override {
    return Unused();
  }
  absl::StatusOr<v1::CollectResultsResponse> CollectResults(const std::string&,
                                                            std::chrono::nanoseconds,
                                                            bool) override {
    return Unused();
  }
  absl::StatusOr<v1::EndRunResponse> EndRun(const std::string&) override { return Unused(); }

 private:
  static absl::Status Unused() { return absl::UnimplementedError("not used by this test"); }
  std::string address_ = "fake";
  std::chrono::nanoseconds offset_;
  milliseconds delay_;
};

TEST(ClockOffset, EstimatesAnAgentClockAheadWithinHalfTheRoundTrip) {
  FakeClockAgent agent(std::chrono::seconds(3), milliseconds(5));
  std::chrono::nanoseconds rtt{0};
  auto offset = MeasureClockOffset(agent, 5, &rtt);
  ASSERT_TRUE(offset.ok()) << offset.status();
  EXPECT_GE(rtt, milliseconds(10));
  // Symmetric delays: the midpoint estimate is off by far less than half the RTT.
  EXPECT_NEAR(static_cast<double>(offset->count()), 3e9, static_cast<double>(rtt.count()) / 2);
}

TEST(ClockOffset, AgentErrorsAreReturned) {
  class Broken : public FakeClockAgent {
   public:
    Broken() : FakeClockAgent(std::chrono::seconds(0), milliseconds(0)) {}
    absl::StatusOr<v1::GetClockResponse> GetClock() override {
      return absl::UnavailableError("agent gone");
    }
  } agent;
  EXPECT_EQ(MeasureClockOffset(agent, 3, nullptr).status().code(), absl::StatusCode::kUnavailable);
}

TEST(SweepParams, KeepTheYamlScalarType) {
  EXPECT_EQ(SweepValueJson(SweepValue::Int(-1)), nlohmann::json(-1));
  EXPECT_EQ(SweepValueJson(SweepValue::Double(0.5)), nlohmann::json(0.5));
  EXPECT_EQ(SweepValueJson(SweepValue::Bool(true)), nlohmann::json(true));
  EXPECT_EQ(SweepValueJson(SweepValue::String("paced")), nlohmann::json("paced"));
}

TEST(Report, TableShowsParamsOutcomesListenersAndMovedCounters) {
  const auto result = nlohmann::json::parse(R"({"scenario": "s", "runs": [{
    "index": 0, "params": {"listeners.l1.backlog": 4}, "start_skew_ms": 0.25,
    "floods": {"f1": {"host": "client", "attempted": 20, "established": 5, "reset": 0,
      "refused": 0, "timed_out": 15, "errors": {"EADDRNOTAVAIL": 2},
      "fates": {"queued": 5, "timed_out": 15},
      "connect_latency_ms": {"p50": 0.05, "p90": 0.06, "p99": 0.1, "max": 0.2}}},
    "listeners": {"l1": {"host": "server", "address": "198.18.0.2:4000", "backlog": 4,
      "backlog_effective": 4, "accepted": 0, "accept_queue_peak": 5}},
    "hosts": {"server": {"counters": {"TcpExtListenOverflows": 15, "TcpInSegs": 100},
      "packets": {"from_server": {"synack": 6, "synack_retransmit": 2, "rst": 1}}}}}]})");
  const std::string table = RenderTable(result);
  EXPECT_NE(table.find("listeners.l1.backlog=4"), std::string::npos) << table;
  EXPECT_NE(table.find("queued:5"), std::string::npos) << table;
  EXPECT_NE(table.find("EADDRNOTAVAIL:2"), std::string::npos) << table;
  EXPECT_NE(table.find("198.18.0.2:4000"), std::string::npos) << table;
  EXPECT_NE(table.find("TcpExtListenOverflows=15"), std::string::npos) << table;
  EXPECT_EQ(table.find("TcpInSegs"), std::string::npos) << "only handshake counters are shown";
  EXPECT_NE(table.find("synack 6 (retx 2)"), std::string::npos) << table;
}

}  // namespace
}  // namespace synq::controller
