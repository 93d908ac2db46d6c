// Proves the controller's pure pieces: the per-connection fate join, the clock-offset estimate
// (with a fake agent clock), typed sweep params, and the terminal table rendered from the typed
// result.
#include <gtest/gtest.h>

#include <thread>

#include "controller/result/fate_join.h"
#include "controller/result/result_json.h"
#include "controller/result/run_builder.h"
#include "controller/result/table.h"
#include "controller/run/phases.h"
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

void AddServer(v1::CollectResultsResponse* c, const std::string& remote, v1::TcpState state,
               bool accepted) {
  v1::ServerSocket* s = c->add_server_sockets();
  s->set_local("198.18.0.2:5000");
  s->set_remote(remote);
  s->set_state(state);
  s->set_accepted(accepted);
}

TEST(FateJoin, JoinsClientAttemptsWithTheServerViewByFourTuple) {
  v1::CollectResultsResponse server;
  AddServer(&server, "198.18.0.3:1001", v1::TCP_STATE_ESTABLISHED, true);
  AddServer(&server, "198.18.0.3:1002", v1::TCP_STATE_ESTABLISHED, false);
  AddServer(&server, "198.18.0.3:1003", v1::TCP_STATE_SYN_RECV, false);
  AddServer(&server, "198.18.0.3:1005", v1::TCP_STATE_NEW_SYN_RECV, false);
  result::FateJoin join;
  join.AddServerSockets(server);
  using result::Fate;
  EXPECT_EQ(join.Of(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1001"), true), Fate::kAccepted);
  EXPECT_EQ(join.Of(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1002"), true), Fate::kQueued);
  EXPECT_EQ(join.Of(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1003"), true), Fate::kSynRecv);
  EXPECT_EQ(join.Of(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1005"), true), Fate::kSynRecv);
  EXPECT_EQ(join.Of(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1004"), true),
            Fate::kUnknownToServer);
}

TEST(FateJoin, WithoutAnObservedServerAnUnmatchedConnectionIsNotCalledUnknown) {
  // A flood at a server synq did not start: no server view, so "the server has no state for
  // it" cannot be stated.
  result::FateJoin join;
  EXPECT_EQ(join.Of(Attempt(v1::OUTCOME_ESTABLISHED, "198.18.0.3:1004"), false),
            result::Fate::kEstablishedUnjoined);
}

TEST(FateJoin, UnconnectedAttemptsKeepTheirClientOutcome) {
  result::FateJoin none;
  using result::Fate;
  EXPECT_EQ(none.Of(Attempt(v1::OUTCOME_TIMED_OUT, "198.18.0.3:1"), true), Fate::kTimedOut);
  EXPECT_EQ(none.Of(Attempt(v1::OUTCOME_RESET, "198.18.0.3:1"), true), Fate::kReset);
  EXPECT_EQ(none.Of(Attempt(v1::OUTCOME_REFUSED, "198.18.0.3:1"), true), Fate::kRefused);
  EXPECT_EQ(none.Of(Attempt(v1::OUTCOME_ERROR, "198.18.0.3:1"), true), Fate::kError);
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
  google::protobuf::Value v;
  result::SetParamValue({SweepValue::Kind::kInt, "-1"}, &v);
  EXPECT_EQ(v.number_value(), -1);
  result::SetParamValue({SweepValue::Kind::kDouble, "0.5"}, &v);
  EXPECT_EQ(v.number_value(), 0.5);
  result::SetParamValue({SweepValue::Kind::kBool, "true"}, &v);
  EXPECT_TRUE(v.bool_value());
  result::SetParamValue({SweepValue::Kind::kString, "paced"}, &v);
  EXPECT_EQ(v.string_value(), "paced");
}

TEST(Report, TableShowsParamsOutcomesListenersAndMovedCounters) {
  // result.json as 0.2 wrote it still parses into the typed result.
  const auto result = result::FromJson(R"({"scenario": "s", "runs": [{
    "index": 0, "params": {"listeners.l1.backlog": 4}, "start_skew_ms": 0.25,
    "floods": {"f1": {"host": "client", "attempted": 20, "established": 5, "reset": 0,
      "refused": 0, "timed_out": 15, "errors": {"EADDRNOTAVAIL": 2},
      "fates": {"queued": 5, "timed_out": 15},
      "connect_latency_ms": {"p50": 0.05, "p90": 0.06, "p99": 0.1, "max": 0.2}}},
    "listeners": {"l1": {"host": "server", "address": "198.18.0.2:4000", "backlog": 4,
      "backlog_effective": 4, "accepted": 0, "accept_queue_peak": 5}},
    "hosts": {"server": {"counters": {"TcpExtListenOverflows": 15, "TcpInSegs": 100},
      "packets": {"from_server": {"synack": 6, "synack_retransmit": 2, "rst": 1}}}}}]})");
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string table = result::RenderTable(*result);
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
