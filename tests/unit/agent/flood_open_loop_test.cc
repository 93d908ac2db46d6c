// Proves the open-loop flood engine, on each engine (io_uring and epoll), against real loopback
// sockets: a churn flood at a steady rate
// makes rate x duration attempts and, with close rst, leaves no TIME_WAIT while the peer sees each
// RST about `lifetime` after connect; close fin leaves TIME_WAIT on the client side; too little
// concurrency for the rate drops launches (counted, never launched later); latency runs from the
// scheduled instant; the per-second series sums to the totals; `answered` counts connections that
// got a byte; source ports are bound from the given slices; and the engine keeps at most 64 bytes
// of user memory per held socket. Every expected figure is derived in a comment from the schedule
// or the kernel mechanism. Servers bind 127.0.0.1:0.
#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/flood/flood_engine.h"
#include "agent/flood/source_ports.h"
#include "agent/flood/uring.h"
#include "common/net_address.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/agent/engine_param.h"
#include "tests/unit/agent/loopback_listener.h"

namespace synq::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class FloodOpenLoopEngines : public EngineParamTest {};  // engine_param.h

// A server on its own thread (epoll): accepts everything, optionally writes `greeting` to each
// connection, reads and drops, and records how each connection ended as the peer sees it:
// recv() == 0 (a FIN) or ECONNRESET (an RST), and how long after accept.
class Peer {
 public:
  explicit Peer(int backlog, std::string greeting = "")
      : listener_(Listen(backlog, SOCK_NONBLOCK)),
        address_(AddressOf(listener_)),
        greeting_(std::move(greeting)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Peer() { Stop(); }
  void Stop() {
    if (done_.exchange(true)) return;
    thread_.join();
  }
  const common::SocketAddress& address() const { return address_; }
  // Valid after Stop().
  uint64_t accepted() const { return accepted_; }
  const std::vector<std::chrono::nanoseconds>& fins() const { return fins_; }
  const std::vector<std::chrono::nanoseconds>& resets() const { return resets_; }
  // The source ports of the connections it accepted so far (its listener is IPv4 loopback).
  std::set<uint16_t> client_ports() const {
    std::lock_guard<std::mutex> lock(mu_);
    return client_ports_;
  }

 private:
  void Loop() {
    common::UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener_.get();
    epoll_ctl(ep.get(), EPOLL_CTL_ADD, listener_.get(), &ev);
    std::map<int, Clock::time_point> open;
    epoll_event events[256];
    while (!done_) {
      const int n = epoll_wait(ep.get(), events, 256, 20);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listener_.get()) {
          while (true) {
            sockaddr_storage from{};
            socklen_t from_len = sizeof(from);
            const int c = accept4(listener_.get(), reinterpret_cast<sockaddr*>(&from), &from_len,
                                  SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) break;
            ++accepted_;
            {
              std::lock_guard<std::mutex> lock(mu_);
              client_ports_.insert(ntohs(reinterpret_cast<sockaddr_in*>(&from)->sin_port));
            }
            open[c] = Clock::now();
            if (!greeting_.empty()) ::send(c, greeting_.data(), greeting_.size(), MSG_NOSIGNAL);
            epoll_event cev{};
            cev.events = EPOLLIN | EPOLLRDHUP;
            cev.data.fd = c;
            epoll_ctl(ep.get(), EPOLL_CTL_ADD, c, &cev);
          }
          continue;
        }
        char buf[512];
        const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
        if (r > 0 || (r < 0 && errno == EAGAIN)) continue;
        const auto lived = Clock::now() - open[fd];
        (r == 0 ? fins_ : resets_).push_back(lived);
        open.erase(fd);
        ::close(fd);  // after a FIN: our FIN; after an RST: nothing (the socket is gone)
      }
    }
    for (const auto& [fd, at] : open) ::close(fd);
  }

  common::UniqueFd listener_;
  common::SocketAddress address_;
  std::string greeting_;
  std::atomic<bool> done_{false};
  std::thread thread_;
  uint64_t accepted_ = 0;
  std::vector<std::chrono::nanoseconds> fins_;
  std::vector<std::chrono::nanoseconds> resets_;
  mutable std::mutex mu_;
  std::set<uint16_t> client_ports_;  // guarded by mu_
};

FloodSpec SpecFor(const common::SocketAddress& target) {
  FloodSpec spec;
  spec.name = "open-loop";
  spec.target = target;
  spec.connections = 0;
  spec.concurrency = 1;
  spec.connect_timeout = 1s;
  spec.hold = 0s;
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

// TCP sockets of this network namespace in `state` (hex as in /proc/net/tcp: "06" = TIME_WAIT)
// with `port` at either end.
// Which end of a socket `port` must be: the listener's (kServer: local port), the flood's
// (kClient: remote port), or either. `client_ports`, when given, also holds a kClient socket's
// local port to the ones this test's peer accepted: the machine is shared, and a listener may get
// the port number an earlier listener had, towards which other processes' sockets still sit in
// TIME_WAIT, or that an earlier client socket in TIME_WAIT had as its source port.
enum class End { kServer, kClient, kEither };

int CountSockets(uint16_t port, const std::string& state, End end = End::kEither,
                 const std::set<uint16_t>* client_ports = nullptr) {
  int count = 0;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, st;
      fields >> slot >> local >> remote >> st;
      const auto port_of = [](const std::string& a) {
        return static_cast<uint16_t>(std::stoul(a.substr(a.rfind(':') + 1), nullptr, 16));
      };
      const bool server = port_of(local) == port;
      const bool client = port_of(remote) == port &&
                          (client_ports == nullptr || client_ports->count(port_of(local)) > 0);
      if (st == state && (end == End::kServer   ? server
                          : end == End::kClient ? client
                                                : server || client)) {
        ++count;
      }
    }
  }
  return count;
}

std::chrono::nanoseconds Median(std::vector<std::chrono::nanoseconds> v) {
  if (v.empty()) return std::chrono::nanoseconds{-1};
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// The per-second series adds up to the totals, outcome by outcome.
void ExpectSeriesSumsToTotals(const FloodResult& r) {
  FloodSecond sum;
  uint64_t latencies = 0;
  for (size_t i = 0; i < r.series.size(); ++i) {
    const FloodSecond& s = r.series[i];
    EXPECT_EQ(s.second, i);
    sum.launched += s.launched;
    sum.established += s.established;
    sum.reset += s.reset;
    sum.refused += s.refused;
    sum.timed_out += s.timed_out;
    sum.errors += s.errors;
    sum.late += s.late;
    sum.dropped += s.dropped;
    sum.answered += s.answered;
    latencies += s.connect_latency_us.count();
  }
  uint64_t errors = 0;
  for (const auto& [name, n] : r.errors) errors += n;
  EXPECT_EQ(sum.launched, r.attempted);
  EXPECT_EQ(sum.established, r.established);
  EXPECT_EQ(sum.reset, r.reset);
  EXPECT_EQ(sum.refused, r.refused);
  EXPECT_EQ(sum.timed_out, r.timed_out);
  EXPECT_EQ(sum.errors, errors);
  EXPECT_EQ(sum.late, r.launches_late);
  EXPECT_EQ(sum.dropped, r.launches_dropped);
  EXPECT_EQ(sum.answered, r.answered);
  EXPECT_EQ(latencies, r.connect_latency_us.count());
  EXPECT_EQ(r.established + r.reset + r.refused + r.timed_out + errors, r.attempted);
}

TEST_P(FloodOpenLoopEngines, ChurnRstAtSteadyRateMakesRateTimesDurationAttemptsAndNoTimeWait) {
  SKIP_WITHOUT_ENGINE();
  Peer peer(1024);
  FloodSpec spec = SpecFor(peer.address());
  spec.profile.rate = 1000;
  spec.duration = 2s;
  spec.close = CloseMode::kRst;
  spec.lifetime = 50ms;
  spec.concurrency = 200;
  const auto began = Clock::now();
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  const auto took = Clock::now() - began;
  ASSERT_TRUE(r.ok()) << r.status();
  std::this_thread::sleep_for(100ms);  // the peer reads the last RSTs
  peer.Stop();
  std::printf(
      "churn rst: %lu attempted, %lu dropped, %lu late, lag max %.2f ms, open peak %lu, "
      "%.0f connects/s achieved, p50 latency %lu us\n",
      static_cast<unsigned long>(r->attempted), static_cast<unsigned long>(r->launches_dropped),
      static_cast<unsigned long>(r->launches_late), r->launch_lag_max.count() / 1e6,
      static_cast<unsigned long>(r->open_peak), r->attempted / 2.0,
      static_cast<unsigned long>(r->connect_latency_us.Quantile(0.5)));
  // Attempt k is due at k ms; those due before 2 s are k = 0..1999: exactly 2000 launched or
  // dropped. Open sockets average rate x lifetime = 50 against room for 200, so a drop needs a
  // stall of over 150 ms: allow 5% for a noisy shared machine.
  EXPECT_EQ(r->attempted + r->launches_dropped, 2000u);
  EXPECT_GE(r->attempted, 1900u);
  EXPECT_EQ(r->established, r->attempted);  // an accepting loopback listener
  EXPECT_EQ(r->closed, r->established);
  EXPECT_LE(r->open_peak, 200u);
  EXPECT_GE(r->open_peak, 40u);  // ~rate x lifetime were open together
  EXPECT_TRUE(r->held_sockets->empty());
  ExpectSeriesSumsToTotals(*r);
  EXPECT_EQ(r->series.size(), 2u);
  // The last launch is due at 1.999 s and closes 50 ms after its connect.
  EXPECT_GE(took, 2040ms);
  // SO_LINGER 0: every close was an RST, seen by the peer about `lifetime` after accept (the
  // accept follows the client's connect within the handshake), and no TIME_WAIT on either side.
  EXPECT_EQ(peer.resets().size(), r->closed);
  EXPECT_TRUE(peer.fins().empty());
  const auto lived = Median(peer.resets());
  EXPECT_GE(lived, 40ms);
  EXPECT_LE(lived, 100ms);
  EXPECT_EQ(CountSockets(peer.address().port(), "06"), 0);
}

// An HTTP server answering with "Connection: close" writes its reply and closes first. A churn
// flood then reads the reply and the FIN before its own `lifetime` runs out: each of those
// connections was established (and answered), none is an error, and the flood closes its end.
TEST_P(FloodOpenLoopEngines, ChurnAgainstAServerThatClosesFirstCountsEstablishedNotErrors) {
  SKIP_WITHOUT_ENGINE();
  common::UniqueFd listener = Listen(1024, SOCK_NONBLOCK);
  const common::SocketAddress address = AddressOf(listener);
  std::atomic<bool> done{false};
  std::thread server([&] {
    while (!done) {
      pollfd pfd{listener.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 20) != 1) continue;
      const int c = accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ::send(c, "ok", 2, MSG_NOSIGNAL);
      ::close(c);
    }
  });
  FloodSpec spec = SpecFor(address);
  spec.profile.rate = 200;
  spec.duration = 500ms;  // attempts due at 0, 5, ..., 495 ms: 100
  spec.close = CloseMode::kRst;
  spec.lifetime = 2s;  // far longer than the server takes to close
  spec.concurrency = 100;
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  done = true;
  server.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempted + r->launches_dropped, 100u);
  EXPECT_GE(r->attempted, 95u);
  EXPECT_EQ(r->established, r->attempted);
  EXPECT_TRUE(r->errors.empty());
  EXPECT_EQ(r->closed, r->established);
  EXPECT_EQ(r->answered, r->established);
  ExpectSeriesSumsToTotals(*r);
}

TEST_P(FloodOpenLoopEngines, ChurnFinLeavesTimeWaitOnTheClientSide) {
  SKIP_WITHOUT_ENGINE();
  Peer peer(1024);
  FloodSpec spec = SpecFor(peer.address());
  spec.profile.rate = 500;
  spec.duration = 1s;
  spec.close = CloseMode::kFin;
  spec.lifetime = 30ms;
  spec.concurrency = 100;
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  // The client closes first, so the client side passes through TIME_WAIT (60 s): one per close,
  // once the peer has answered our FIN with its own (it closes on recv() == 0).
  const auto give_up = Clock::now() + 3s;
  const auto client_tw = [&] {
    const std::set<uint16_t> ports = peer.client_ports();
    return CountSockets(peer.address().port(), "06", End::kClient, &ports);
  };
  while (client_tw() < static_cast<int>(r->closed) && Clock::now() < give_up) {
    std::this_thread::sleep_for(20ms);
  }
  peer.Stop();
  EXPECT_EQ(r->attempted + r->launches_dropped, 500u);  // k = 0..499 due before 1 s
  EXPECT_GE(r->attempted, 475u);
  EXPECT_EQ(r->closed, r->established);
  EXPECT_EQ(peer.fins().size(), r->closed);
  EXPECT_TRUE(peer.resets().empty());
  const auto lived = Median(peer.fins());
  EXPECT_GE(lived, 20ms);
  EXPECT_LE(lived, 80ms);
  EXPECT_EQ(client_tw(), static_cast<int>(r->closed));
  // The peer closed second (on recv() == 0), so it has none.
  EXPECT_EQ(CountSockets(peer.address().port(), "06", End::kServer), 0);
  ExpectSeriesSumsToTotals(*r);
}

TEST_P(FloodOpenLoopEngines, TooLittleConcurrencyDropsLaunchesInsteadOfSlowingDown) {
  SKIP_WITHOUT_ENGINE();
  // Backlog 0 and nobody accepts: the accept queue holds backlog + 1 = 1 connection and the
  // kernel drops every later SYN, so those connects hang until connect_timeout (the SYN
  // retransmit comes at 1 s, after the 400 ms timeout).
  common::UniqueFd listener = Listen(0, SOCK_NONBLOCK);
  FloodSpec spec = SpecFor(AddressOf(listener));
  spec.profile.rate = 200;  // one due every 5 ms: 200 due in the 1 s duration
  spec.duration = 1s;
  spec.concurrency = 4;
  spec.connect_timeout = 400ms;
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  // Launched: attempt 0 (established at once, then held: keep bounds only connects in flight),
  // 4 hanging connects from ~5 ms, refilled as they time out at ~0.4 s and ~0.8 s: 1 + 3 x 4 = 13
  // (fewer only if the machine stalls around a refill). Everything else due is dropped.
  EXPECT_EQ(r->attempted + r->launches_dropped, 200u);
  EXPECT_LE(r->attempted, 13u);
  EXPECT_GE(r->attempted, 9u);
  EXPECT_EQ(r->established, 1u);
  EXPECT_EQ(r->timed_out, r->attempted - 1);
  EXPECT_EQ(r->held_sockets->size(), 1u);
  ExpectSeriesSumsToTotals(*r);
}

TEST_P(FloodOpenLoopEngines, LatencyRunsFromTheScheduledInstant) {
  SKIP_WITHOUT_ENGINE();
  common::UniqueFd listener = Listen(16, SOCK_NONBLOCK);  // 5 connections fit in the accept queue
  FloodSpec spec = SpecFor(AddressOf(listener));
  spec.connections = 5;
  spec.concurrency = 5;
  spec.profile.rate = 10;  // due at 0, 100, 200, 300, 400 ms
  spec.keep_records = true;
  const std::atomic<bool> no_stop{false};
  // The schedule began 250 ms before the call: attempts 0-2 are already 250, 150 and 50 ms late.
  const auto run_start = std::chrono::system_clock::now() - 250ms;
  const absl::StatusOr<FloodResult> r = RunFlood(spec, run_start, no_stop);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->connections.size(), 5u);
  EXPECT_EQ(r->established, 5u);
  EXPECT_GE(r->launches_late, 3u);
  EXPECT_GE(r->launch_lag_max, 250ms);
  EXPECT_LT(r->launch_lag_max, 400ms);
  EXPECT_EQ(r->launches_dropped, 0u);
  // A loopback connect takes microseconds; what the latency shows is the lateness.
  EXPECT_GE(r->connections[0].connect_latency, 250ms);
  EXPECT_GE(r->connections[1].connect_latency, 150ms);
  EXPECT_GE(r->connections[2].connect_latency, 50ms);
  EXPECT_GE(r->connect_latency_us.max(), 250'000u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(r->connections[i].started_at, run_start + std::chrono::milliseconds(100 * i)) << i;
  }
  ExpectSeriesSumsToTotals(*r);
}

TEST_P(FloodOpenLoopEngines, AnsweredCountsConnectionsThatReceivedBytesOnce) {
  SKIP_WITHOUT_ENGINE();
  {
    // The server greets every connection with 2 bytes: 6 connections, 6 answered, not 12.
    Peer peer(64, "hi");
    FloodSpec spec = SpecFor(peer.address());
    spec.connections = 6;
    spec.concurrency = 6;
    spec.hold = 300ms;
    const absl::StatusOr<FloodResult> r = RunNow(spec);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->established, 6u);
    EXPECT_EQ(r->answered, 6u);
    ExpectSeriesSumsToTotals(*r);
  }
  {
    Peer silent(64);
    FloodSpec spec = SpecFor(silent.address());
    spec.connections = 6;
    spec.concurrency = 6;
    spec.hold = 200ms;
    const absl::StatusOr<FloodResult> r = RunNow(spec);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->established, 6u);
    EXPECT_EQ(r->answered, 0u);
  }
}

TEST_P(FloodOpenLoopEngines, SourcePortsAreBoundFromTheGivenSlices) {
  SKIP_WITHOUT_ENGINE();
  Peer peer(64);
  FloodSpec spec = SpecFor(peer.address());
  spec.connections = 12;
  spec.concurrency = 12;
  spec.hold = 100ms;
  // The slices lie outside ip_local_port_range: a port that connect() picked for itself (any
  // other test's connection, or its TIME_WAIT) refuses bind() even with SO_REUSEADDR, and the
  // rotation would skip it to the other address, so 6 per address holds only there.
  const absl::StatusOr<PortFacts> facts = ReadPortFacts("/proc/sys");
  ASSERT_TRUE(facts.ok()) << facts.status();
  uint32_t base = 0;
  if (facts->local_range.first >= 1224) {
    base = facts->local_range.first - 200u;
  } else if (facts->local_range.last <= 65335) {
    base = facts->local_range.last + 100u;
  } else {
    GTEST_SKIP() << "ip_local_port_range covers every port from 1024";
  }
  const auto port = [&](uint32_t offset) { return static_cast<uint16_t>(base + offset); };
  // Two loopback addresses; of base+0..19 and base+100..109 only ports with port % 3 == 1
  // (6 or 7 of the first slice, 3 or 4 of the second: at least 9 per address).
  for (const char* ip : {"127.0.0.1", "127.0.0.2"}) {
    SourcePorts s;
    s.address = *common::ParseHostAddress(ip, 0);
    s.ranges = {{port(0), port(19)}, {port(100), port(109)}};
    s.stride = 3;
    s.offset = 1;
    spec.source_ports.push_back(s);
  }
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->established, 12u);
  EXPECT_THAT(r->sources, ::testing::UnorderedElementsAre("127.0.0.1", "127.0.0.2"));
  // Round robin over the addresses, 6 each; per address the usable ports in order.
  ASSERT_EQ(r->held.size(), 2u);
  for (const HeldConnections& h : r->held) {
    EXPECT_EQ(h.remote, peer.address().ToString());
    std::vector<uint16_t> ports = h.local_ports;
    std::sort(ports.begin(), ports.end());
    // A port a listener on this machine holds would still be skipped, so check the rule rather
    // than the exact list.
    EXPECT_EQ(ports.size(), 6u) << h.local_ip;
    for (uint16_t p : ports) {
      EXPECT_EQ(p % 3, 1) << p;
      EXPECT_TRUE((p >= port(0) && p <= port(19)) || (p >= port(100) && p <= port(109))) << p;
    }
    EXPECT_EQ(std::set<uint16_t>(ports.begin(), ports.end()).size(), ports.size());
  }
}

TEST_P(FloodOpenLoopEngines, SourcePortsHeldByOthersEndInEaddrnotavail) {
  SKIP_WITHOUT_ENGINE();
  Peer peer(64);
  // Hold both usable ports with plain (no SO_REUSEADDR) sockets: every bind meets EADDRINUSE,
  // each port is skipped, and a full cycle without success fails the attempt.
  std::vector<common::UniqueFd> squatters;
  std::vector<uint16_t> ports;
  for (int i = 0; i < 2; ++i) {
    common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ports.push_back(AddressOf(fd).port());
    squatters.push_back(std::move(fd));
  }
  FloodSpec spec = SpecFor(peer.address());
  spec.connections = 3;
  spec.concurrency = 3;
  SourcePorts s;
  s.address = *common::ParseHostAddress("127.0.0.1", 0);
  for (uint16_t p : ports) s.ranges.push_back({p, p});
  spec.source_ports.push_back(s);
  const absl::StatusOr<FloodResult> r = RunNow(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempted, 3u);
  EXPECT_EQ(r->errors.count("EADDRNOTAVAIL") ? r->errors.at("EADDRNOTAVAIL") : 0, 3u);
}

TEST(FloodOpenLoop, BoundlessOrBadSpecsAreRefusedNamingTheField) {
  FloodSpec spec = SpecFor(*common::ParseSocketAddress("127.0.0.1:9"));
  auto expect = [](const FloodSpec& s, const std::string& field) {
    const absl::Status status = ValidateFloodSpec(s);
    ASSERT_FALSE(status.ok()) << field;
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(field)) << status;
  };
  expect(spec, "duration");  // neither connections nor duration
  spec.duration = 1s;
  spec.profile.rate = 100;
  EXPECT_TRUE(ValidateFloodSpec(spec).ok());
  FloodSpec s = spec;
  s.profile.rate = 0;
  expect(s, "connections");  // keep at rate 0 for a duration: unbounded held sockets
  s.close = CloseMode::kRst;
  EXPECT_TRUE(ValidateFloodSpec(s).ok());
  s = spec;
  s.lifetime = 1s;
  expect(s, "lifetime");  // keep holds to the end
  s.close = CloseMode::kFin;
  EXPECT_TRUE(ValidateFloodSpec(s).ok());
  s.lifetime = -1s;
  expect(s, "lifetime");
  s = spec;
  s.profile = RateProfile{};
  s.profile.kind = RateProfile::Kind::kRamp;
  s.profile.from = 1;
  s.profile.to = 10;
  expect(s, "ramp.over");
  s.rate = 5;
  expect(s, "rate");  // rate and a ramp
  s = spec;
  s.schedule_stride = 2;
  s.schedule_offset = 2;
  expect(s, "schedule_offset");
  s = spec;
  SourcePorts six;
  six.address = *common::ParseHostAddress("::1", 0);
  six.ranges = {{40000, 40010}};
  s.source_ports = {six};
  expect(s, "source_ports[0].address");
  six.address = *common::ParseHostAddress("127.0.0.1", 0);
  six.ranges = {{40010, 40000}};
  s.source_ports = {six};
  expect(s, "source_ports[0].ranges[0]");
  six.ranges = {{40000, 40000}};
  six.stride = 2;
  six.offset = 1;  // 40000 % 2 == 0: nothing usable
  s.source_ports = {six};
  expect(s, "source_ports");
}

size_t MallocInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;  // small chunks in use + mmapped large ones
}

TEST_P(FloodOpenLoopEngines, UserMemoryPerHeldSocketIsAtMost64Bytes) {
  SKIP_WITHOUT_ENGINE();
  constexpr int kHeld = 5000;
  // A listener that accepts everything into a vector reserved up front (no allocation while the
  // flood runs), so the accept queue never fills and every connection is held.
  common::UniqueFd listener = Listen(1024, SOCK_NONBLOCK);
  const common::SocketAddress target = AddressOf(listener);
  std::vector<common::UniqueFd> accepted;
  accepted.reserve(kHeld);
  std::atomic<bool> done{false};
  std::thread server([&] {
    while (!done && accepted.size() < static_cast<size_t>(kHeld)) {
      pollfd pfd{listener.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      while (accepted.size() < static_cast<size_t>(kHeld)) {
        const int c = accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) break;
        accepted.emplace_back(c);
      }
    }
  });
  FloodSpec spec = SpecFor(target);
  spec.connections = kHeld;
  spec.concurrency = 256;
  spec.hold = 300ms;
  std::atomic<bool> flood_done{false};
  absl::StatusOr<FloodResult> r = absl::UnknownError("not run");
  const size_t before = MallocInUse();
  // Sampled while the flood runs: the peak covers connecting, holding and handing over.
  std::thread flood([&] {
    static const std::atomic<bool> kNoStop{false};
    r = RunFlood(spec, std::chrono::system_clock::now(), kNoStop);
    flood_done = true;
  });
  size_t peak = before;
  while (!flood_done) {
    peak = std::max(peak, MallocInUse());
    std::this_thread::sleep_for(1ms);
  }
  flood.join();
  done = true;
  server.join();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->established, static_cast<uint64_t>(kHeld));
  const double per_socket = static_cast<double>(peak - before) / kHeld;
  std::printf("engine user memory: %zu bytes at peak for %d held sockets = %.1f bytes/socket\n",
              peak - before, kHeld, per_socket);
  EXPECT_LE(per_socket, 64.0);
}

INSTANTIATE_TEST_SUITE_P(BothEngines, FloodOpenLoopEngines,
                         ::testing::Values(FloodEngine::kIoUring, FloodEngine::kEpoll),
                         EngineParamName);

}  // namespace
}  // namespace synq::agent
