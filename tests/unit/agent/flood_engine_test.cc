// Proves the connect flood, on each engine (io_uring and epoll), against the real kernel on
// 127.0.0.1: each outcome kind
// (established, refused, timed out, reset, EOF), backlog+1 accept-queue behaviour, payload
// delivery, rate pacing, the concurrency bound, start offset, stop, the fd budget and spec
// validation, and that every attempt gets exactly one outcome. Servers bind 127.0.0.1:0.
#include "agent/flood/flood_engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/flood/uring.h"
#include "agent/flood/user_data.h"
#include "common/net_address.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/agent/engine_param.h"
#include "tests/unit/agent/loopback_listener.h"

namespace synq::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

class FloodEngines : public EngineParamTest {};  // engine_param.h

// Accepts up to `want` connections on its own thread (giving up after `patience`) and hands each
// to `on_accept`.
class Server {
 public:
  Server(common::UniqueFd listener, int want, std::function<void(common::UniqueFd)> on_accept,
         std::chrono::milliseconds patience = 10s)
      : listener_(std::move(listener)), address_(AddressOf(listener_)) {
    thread_ = std::thread([this, want, on_accept = std::move(on_accept), patience] {
      const auto give_up = Clock::now() + patience;
      for (int accepted = 0; accepted < want && Clock::now() < give_up && !done_;) {
        pollfd pfd{listener_.get(), POLLIN, 0};
        if (::poll(&pfd, 1, 50) <= 0) continue;
        common::UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) continue;
        ++accepted;
        on_accept(std::move(conn));
      }
    });
  }
  ~Server() {
    done_ = true;
    thread_.join();
  }
  const common::SocketAddress& address() const { return address_; }

 private:
  common::UniqueFd listener_;
  common::SocketAddress address_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

FloodSpec SpecFor(const common::SocketAddress& target, uint64_t connections, uint32_t concurrency) {
  FloodSpec spec;
  spec.name = "test";
  spec.target = target;
  spec.connections = connections;
  spec.concurrency = concurrency;
  spec.connect_timeout = 1s;
  spec.hold = 0s;
  spec.keep_records = true;  // these tests check every attempt's record
  return spec;
}

absl::StatusOr<FloodResult> RunNow(const FloodSpec& spec) {
  static const std::atomic<bool> kNoStop{false};
  absl::StatusOr<FloodResult> r = RunFlood(spec, std::chrono::system_clock::now(), kNoStop);
  if (r.ok()) {
    EXPECT_EQ(r->engine, FloodEngineName(ProcessFloodEngine().engine));
  }
  return r;
}

// attempted == records == sum of the outcome counters, and the records agree with the counters.
void ExpectOneOutcomeEach(const FloodResult& r) {
  uint64_t errors = 0;
  for (const auto& [name, n] : r.errors) errors += n;
  EXPECT_EQ(r.established + r.reset + r.refused + r.timed_out + errors, r.attempted);
  EXPECT_EQ(r.connections.size(), r.attempted);
  uint64_t established = 0, reset = 0, refused = 0, timed_out = 0;
  std::map<std::string, uint64_t> by_name;
  for (const ConnectionRecord& c : r.connections) {
    switch (c.outcome) {
      case Outcome::kEstablished:
        ++established;
        EXPECT_GE(c.connect_latency.count(), 0);
        break;
      case Outcome::kReset:
        ++reset;
        break;
      case Outcome::kRefused:
        ++refused;
        EXPECT_EQ(c.connect_latency.count(), -1);
        break;
      case Outcome::kTimedOut:
        ++timed_out;
        EXPECT_EQ(c.connect_latency.count(), -1);
        break;
      case Outcome::kError:
        ++by_name[c.error_name];
        break;
    }
    if (c.outcome != Outcome::kEstablished) {
      EXPECT_GE(c.outcome_after.count(), 0);
    }
  }
  EXPECT_EQ(established, r.established);
  EXPECT_EQ(reset, r.reset);
  EXPECT_EQ(refused, r.refused);
  EXPECT_EQ(timed_out, r.timed_out);
  EXPECT_EQ(by_name, r.errors);
  uint64_t connected = 0;
  for (const ConnectionRecord& c : r.connections) connected += c.connect_latency.count() >= 0;
  EXPECT_EQ(r.connect_latency_us.count(), connected);
}

size_t OpenFdCount() {
  return static_cast<size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                           std::filesystem::directory_iterator{}));
}

// Most attempts whose [start, resolution] intervals overlap at one instant.
int MaxConnectsInFlight(const FloodResult& r) {
  std::vector<std::pair<std::chrono::system_clock::time_point, int>> events;
  for (const ConnectionRecord& c : r.connections) {
    const auto took = c.connect_latency.count() >= 0 ? c.connect_latency : c.outcome_after;
    events.emplace_back(c.started_at, +1);
    events.emplace_back(
        c.started_at + std::chrono::duration_cast<std::chrono::system_clock::duration>(took), -1);
  }
  std::sort(events.begin(), events.end());  // at equal times an end (-1) sorts first
  int now = 0, most = 0;
  for (const auto& [t, delta] : events) most = std::max(most, now += delta);
  return most;
}

TEST(FloodUserData, PacksOpSlotAndGeneration) {
  for (uint32_t slot : {0u, 1u, 12345u, flood::kMaxSlots - 1}) {
    for (uint32_t generation : {0u, 7u, 0xFFFFFFFFu}) {
      const flood::UserData ud =
          flood::UnpackUserData(flood::PackUserData(flood::Op::kPoll, slot, generation));
      EXPECT_EQ(ud.op, flood::Op::kPoll);
      EXPECT_EQ(ud.slot, slot);
      EXPECT_EQ(ud.generation, generation);
    }
  }
  EXPECT_NE(flood::PackUserData(flood::Op::kConnect, 3, 1),
            flood::PackUserData(flood::Op::kConnect, 3, 2));
  EXPECT_FALSE(flood::IsFloodOp(flood::UnpackUserData(LIBURING_UDATA_TIMEOUT).op));
  EXPECT_FALSE(flood::IsFloodOp(flood::UnpackUserData(0).op));
}

TEST(FloodEngine, ErrnoNamesAreSymbolic) {
  EXPECT_EQ(ErrnoName(ECONNREFUSED), "ECONNREFUSED");
  EXPECT_EQ(ErrnoName(EADDRNOTAVAIL), "EADDRNOTAVAIL");
  EXPECT_EQ(ErrnoName(EMFILE), "EMFILE");
  EXPECT_EQ(ErrnoName(100000), "errno 100000");
}

TEST(FloodEngineChoice, FlagValuesParseAndOthersAreRefusedNamingTheFlag) {
  EXPECT_EQ(*ParseFloodEngine("auto"), FloodEngine::kAuto);
  EXPECT_EQ(*ParseFloodEngine("io_uring"), FloodEngine::kIoUring);
  EXPECT_EQ(*ParseFloodEngine("epoll"), FloodEngine::kEpoll);
  const absl::StatusOr<FloodEngine> bad = ParseFloodEngine("uring");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--flood-engine: 'uring'"));
}

TEST(FloodEngineChoice, AutoTakesIoUringWhereItWorksAndEpollIsTakenAsAsked) {
  const absl::StatusOr<FloodEngineChoice> epoll = ChooseFloodEngine(FloodEngine::kEpoll);
  ASSERT_TRUE(epoll.ok());
  EXPECT_EQ(epoll->engine, FloodEngine::kEpoll);
  EXPECT_THAT(epoll->note, HasSubstr("--flood-engine epoll"));
  // Where this process may set up a ring (the refused case runs under seccomp in
  // tests/integration/flood_engine_fallback_test.cc), auto is io_uring with no note.
  if (!flood::Uring::Create(8, 16).ok()) GTEST_SKIP() << "io_uring unavailable here";
  const absl::StatusOr<FloodEngineChoice> automatic = ChooseFloodEngine(FloodEngine::kAuto);
  ASSERT_TRUE(automatic.ok());
  EXPECT_EQ(automatic->engine, FloodEngine::kIoUring);
  EXPECT_EQ(automatic->note, "");
  EXPECT_TRUE(ProbeIoUring().ok());
}

TEST(FloodEngine, InvalidSpecFieldsAreNamed) {
  absl::StatusOr<common::SocketAddress> target = common::ParseSocketAddress("127.0.0.1:9");
  ASSERT_TRUE(target.ok());
  const FloodSpec good = SpecFor(*target, 1, 1);
  ASSERT_TRUE(ValidateFloodSpec(good).ok());

  auto expect_named = [](const FloodSpec& spec, const std::string& field) {
    const absl::StatusOr<FloodResult> r = RunNow(spec);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(field));
  };
  FloodSpec s = good;
  s.connections = 0;
  expect_named(s, "connections");
  s = good;
  s.concurrency = 0;
  expect_named(s, "concurrency");
  s = good;
  s.rate = -1;
  expect_named(s, "rate");
  s.rate = std::nan("");
  expect_named(s, "rate");
  s = good;
  s.connect_timeout = 0s;
  expect_named(s, "connect_timeout");
  s = good;
  s.hold = -1s;
  expect_named(s, "hold");
  s = good;
  s.target = common::SocketAddress{};
  expect_named(s, "target");
  s = good;
  s.source = "not-an-address";
  expect_named(s, "source");
  s.source = "::1";
  expect_named(s, "source");
}

TEST(FloodEngine, EnsureFdBudgetRefusesNeedBeyondLimit) {
  const absl::Status status = EnsureFdBudget(1'000'000);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("RLIMIT_NOFILE"));
  EXPECT_THAT(message, HasSubstr("1000000"));
  EXPECT_THAT(message, HasSubstr("hard"));
  EXPECT_TRUE(EnsureFdBudget(100).ok());
}

TEST(FloodEngine, FloodBeyondFdLimitFailsBeforeConnecting) {
  absl::StatusOr<common::SocketAddress> target = common::ParseSocketAddress("127.0.0.1:9");
  ASSERT_TRUE(target.ok());
  const absl::StatusOr<FloodResult> r = RunNow(SpecFor(*target, 1'000'000, 1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("RLIMIT_NOFILE"));
}

TEST_P(FloodEngines, RefusedWhenNothingListens) {
  SKIP_WITHOUT_ENGINE();
  common::SocketAddress target;
  {
    // Take a port from the kernel, then free it: nothing listens there.
    common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    target = AddressOf(fd);
  }
  const absl::StatusOr<FloodResult> r = RunNow(SpecFor(target, 20, 5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempted, 20u);
  EXPECT_EQ(r->refused, 20u);
  ExpectOneOutcomeEach(*r);
  for (const ConnectionRecord& c : r->connections) {
    EXPECT_EQ(c.remote, target.ToString());
    EXPECT_EQ(c.connect_latency.count(), -1);
  }
}

TEST_P(FloodEngines, NonAcceptingListenerHoldsBacklogPlusOne) {
  SKIP_WITHOUT_ENGINE();
  common::UniqueFd listener = Listen(4);
  FloodSpec spec = SpecFor(AddressOf(listener), 10, 1);
  spec.connect_timeout = 300ms;
  spec.hold = 200ms;
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  // The accept queue holds backlog+1; SYNs to a full queue are dropped and the connects time out.
  EXPECT_EQ(r->established, 5u);
  EXPECT_EQ(r->timed_out, 5u);
  ExpectOneOutcomeEach(*r);
  EXPECT_EQ(r->connect_latency_us.count(), 5u);
  for (size_t i = 0; i < r->connections.size(); ++i) {
    const ConnectionRecord& c = r->connections[i];
    EXPECT_EQ(c.outcome, i < 5 ? Outcome::kEstablished : Outcome::kTimedOut) << i;
    EXPECT_THAT(c.local, StartsWith("127.0.0.1:")) << i;
    if (c.outcome == Outcome::kTimedOut) {
      EXPECT_GE(c.outcome_after, 290ms) << i;
    }
  }
}

TEST_P(FloodEngines, ResetDetectedDuringHold) {
  SKIP_WITHOUT_ENGINE();
  constexpr int kConnections = 5;
  // Accepts and aborts each connection: SO_LINGER {1, 0} makes close() send an RST.
  Server server(Listen(16), kConnections, [](common::UniqueFd conn) {
    const linger abort_on_close{1, 0};
    ::setsockopt(conn.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  });
  FloodSpec spec = SpecFor(server.address(), kConnections, kConnections);
  spec.hold = 3s;  // ends early once every held connection is gone
  const auto began = Clock::now();
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reset, static_cast<uint64_t>(kConnections));
  ExpectOneOutcomeEach(*r);
  EXPECT_LT(Clock::now() - began, 3s);
}

TEST_P(FloodEngines, OrderlyCloseDuringHoldCountsAsEof) {
  SKIP_WITHOUT_ENGINE();
  constexpr int kConnections = 3;
  Server server(Listen(16), kConnections, [](common::UniqueFd) {});  // plain close: a FIN
  FloodSpec spec = SpecFor(server.address(), kConnections, kConnections);
  spec.hold = 3s;
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->errors.count("EOF") ? r->errors.at("EOF") : 0, uint64_t{kConnections});
  ExpectOneOutcomeEach(*r);
}

TEST_P(FloodEngines, PayloadIsDelivered) {
  SKIP_WITHOUT_ENGINE();
  std::string received;
  {
    Server server(Listen(16), 1, [&received](common::UniqueFd conn) {
      const auto give_up = Clock::now() + 5s;
      char buf[64];
      while (received.size() < 5 && Clock::now() < give_up) {
        pollfd pfd{conn.get(), POLLIN, 0};
        if (::poll(&pfd, 1, 50) <= 0) continue;
        const ssize_t n = ::recv(conn.get(), buf, sizeof(buf), 0);
        if (n <= 0) break;
        received.append(buf, static_cast<size_t>(n));
      }
    });
    FloodSpec spec = SpecFor(server.address(), 1, 1);
    spec.payload = "hello";
    spec.hold = 300ms;
    const absl::StatusOr<FloodResult> r = RunNow(spec);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectOneOutcomeEach(*r);
  }  // joins the server
  EXPECT_EQ(received, "hello");
}

TEST_P(FloodEngines, RatePacingSpreadsAttempts) {
  SKIP_WITHOUT_ENGINE();
  common::UniqueFd listener = Listen(64);
  FloodSpec spec = SpecFor(AddressOf(listener), 20, 20);
  spec.rate = 100;  // attempt i at i * 10 ms: the last one 190 ms in
  const auto began = Clock::now();
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(Clock::now() - began, 185ms);
  EXPECT_EQ(r->established, 20u);
  ExpectOneOutcomeEach(*r);
  // Records carry each attempt's scheduled instant: i * 10 ms after the first.
  for (size_t i = 0; i < r->connections.size(); ++i) {
    const auto due = std::chrono::milliseconds(10 * static_cast<int64_t>(i));
    const auto at = r->connections[i].started_at - r->connections[0].started_at;
    EXPECT_GE(at, due - 1us) << i;
    EXPECT_LE(at, due + 1us) << i;
  }
}

TEST_P(FloodEngines, ConcurrencyIsRespected) {
  SKIP_WITHOUT_ENGINE();
  // Backlog 0: the first connection fills the accept queue, so later connects hang until their
  // timeout and several are in flight together.
  common::UniqueFd listener = Listen(0);
  FloodSpec spec = SpecFor(AddressOf(listener), 8, 2);
  spec.connect_timeout = 200ms;
  const auto began = Clock::now();
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectOneOutcomeEach(*r);
  EXPECT_EQ(r->attempted, 8u);
  EXPECT_GE(r->timed_out, 5u);
  EXPECT_EQ(MaxConnectsInFlight(*r), 2);
  // At least 5 timeouts, 2 at a time: three rounds of 200 ms.
  EXPECT_GE(Clock::now() - began, 550ms);
}

TEST_P(FloodEngines, EveryAttemptHasExactlyOneOutcomeAndAllSocketsClose) {
  SKIP_WITHOUT_ENGINE();
  // A mix: some established and held, the rest timing out, slots recycled under concurrency.
  common::UniqueFd listener = Listen(9);
  FloodSpec spec = SpecFor(AddressOf(listener), 60, 12);
  spec.connect_timeout = 200ms;
  spec.hold = 100ms;
  spec.payload = "x";
  const size_t fds_before = OpenFdCount();
  absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  // Established connections are handed over open (the run closes them after reading the
  // server's view); everything else, the ring included, is closed.
  EXPECT_EQ(r->held_sockets->size(), r->established);
  EXPECT_EQ(OpenFdCount(), fds_before + r->established);
  r->held_sockets->clear();
  EXPECT_EQ(OpenFdCount(), fds_before);
  EXPECT_EQ(r->attempted, 60u);
  EXPECT_GE(r->established, 10u);
  EXPECT_GE(r->timed_out, 1u);
  EXPECT_LE(MaxConnectsInFlight(*r), 12);
  ExpectOneOutcomeEach(*r);
  std::set<std::string> locals;
  for (const ConnectionRecord& c : r->connections) {
    if (c.outcome == Outcome::kEstablished) locals.insert(c.local);
  }
  EXPECT_EQ(locals.size(), r->established);  // established sockets were all open together
}

TEST_P(FloodEngines, BindsToSourceAddress) {
  SKIP_WITHOUT_ENGINE();
  common::UniqueFd listener = Listen(16);
  FloodSpec spec = SpecFor(AddressOf(listener), 3, 3);
  spec.source = "127.0.0.1";
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->established, 3u);
  ExpectOneOutcomeEach(*r);
  for (const ConnectionRecord& c : r->connections) {
    EXPECT_THAT(c.local, StartsWith("127.0.0.1:"));
    EXPECT_NE(c.local, "127.0.0.1:0");
  }
}

TEST_P(FloodEngines, WaitsForStartInstant) {
  SKIP_WITHOUT_ENGINE();
  common::UniqueFd listener = Listen(16);
  FloodSpec spec = SpecFor(AddressOf(listener), 1, 1);
  spec.start_after = 250ms;
  const std::atomic<bool> no_stop{false};
  const auto run_start = std::chrono::system_clock::now();
  const absl::StatusOr<FloodResult> r = RunFlood(spec, run_start, no_stop);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->started_at, run_start + 250ms);
  EXPECT_GE(r->connections.at(0).started_at, run_start + 250ms);
  ExpectOneOutcomeEach(*r);
}

TEST_P(FloodEngines, StopFlagEndsLongFloodEarly) {
  SKIP_WITHOUT_ENGINE();
  // Would take 200 x 5 s: the first connection fills the queue, the rest hang to their timeout.
  common::UniqueFd listener = Listen(0);
  FloodSpec spec = SpecFor(AddressOf(listener), 200, 1);
  spec.connect_timeout = 5s;
  spec.hold = 60s;
  std::atomic<bool> stop{false};
  std::thread stopper([&stop] {
    std::this_thread::sleep_for(300ms);
    stop = true;
  });
  const auto began = Clock::now();
  const absl::StatusOr<FloodResult> r = RunFlood(spec, std::chrono::system_clock::now(), stop);
  stopper.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(Clock::now() - began, 4s);  // loose: the flood itself would run for minutes
  EXPECT_LT(r->attempted, 200u);
  EXPECT_GE(r->errors.count("ECANCELED") ? r->errors.at("ECANCELED") : 0, 1u);
  ExpectOneOutcomeEach(*r);
}

TEST_P(FloodEngines, StopBeforeStartAttemptsNothing) {
  SKIP_WITHOUT_ENGINE();
  common::UniqueFd listener = Listen(16);
  FloodSpec spec = SpecFor(AddressOf(listener), 10, 1);
  spec.start_after = 30s;
  const std::atomic<bool> stop{true};
  const auto began = Clock::now();
  const absl::StatusOr<FloodResult> r = RunFlood(spec, std::chrono::system_clock::now(), stop);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(Clock::now() - began, 5s);
  EXPECT_EQ(r->attempted, 0u);
  ExpectOneOutcomeEach(*r);
}

INSTANTIATE_TEST_SUITE_P(BothEngines, FloodEngines,
                         ::testing::Values(FloodEngine::kIoUring, FloodEngine::kEpoll),
                         EngineParamName);

}  // namespace
}  // namespace synq::agent
