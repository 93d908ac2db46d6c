// Proves the Listener binds loopback on port 0, passes the backlog to listen() as is, and that
// never/immediate/paced accept modes, close_on_accept, accept-queue peaks and Stop behave.
#include "agent/listener/listener.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "agent/kernel/sock_diag.h"

namespace synq::agent {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A blocking loopback client connected to `to`.
common::UniqueFd Connect(const common::SocketAddress& to) {
  common::UniqueFd fd(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::connect(fd.get(), to.get(), to.length), 0) << std::strerror(errno);
  return fd;
}

// Polls `done` until it holds or `timeout` passes.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds timeout = 2s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

ListenerSpec Loopback(AcceptMode mode, int backlog = 16) {
  ListenerSpec spec;
  spec.name = "test";
  spec.address = "127.0.0.1";
  spec.backlog = backlog;
  spec.accept = mode;
  return spec;
}

bool HaveIpv6Loopback() {
  common::UniqueFd fd(::socket(AF_INET6, SOCK_STREAM, 0));
  if (!fd) return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

TEST(Listener, BindsPortZeroAndReportsBoundPort) {
  auto listener = Listener::Start(Loopback(AcceptMode::kNever));
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_EQ((*listener)->bound().HostString(), "127.0.0.1");
  EXPECT_NE((*listener)->bound().port(), 0);
  EXPECT_EQ((*listener)->spec().name, "test");
}

TEST(Listener, PortInUseIsAnErrorNamingTheAddress) {
  auto first = Listener::Start(Loopback(AcceptMode::kNever));
  ASSERT_TRUE(first.ok()) << first.status();
  ListenerSpec spec = Loopback(AcceptMode::kNever);
  spec.port = (*first)->bound().port();
  auto second = Listener::Start(spec);
  ASSERT_FALSE(second.ok());
  const std::string message(second.status().message());
  EXPECT_THAT(message, HasSubstr((*first)->bound().ToString()));
  EXPECT_THAT(message, HasSubstr("in use"));
}

TEST(Listener, BadAddressIsAnError) {
  ListenerSpec spec = Loopback(AcceptMode::kNever);
  spec.address = "not-an-ip";
  EXPECT_FALSE(Listener::Start(spec).ok());
}

TEST(Listener, PacedWithoutIntervalIsInvalid) {
  auto listener = Listener::Start(Loopback(AcceptMode::kPaced));
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Listener, BacklogGoesToListenUnclamped) {
  auto small = Listener::Start(Loopback(AcceptMode::kNever, 3));
  ASSERT_TRUE(small.ok()) << small.status();
  auto q = QueryListenQueue((*small)->bound().port());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->accept_queue_max, 3);

  // -1 and a huge backlog both reach the kernel, which caps them at somaxconn.
  for (int backlog : {-1, 1 << 30}) {
    auto big = Listener::Start(Loopback(AcceptMode::kNever, backlog));
    ASSERT_TRUE(big.ok()) << big.status();
    auto bq = QueryListenQueue((*big)->bound().port());
    ASSERT_TRUE(bq.ok()) << bq.status();
    EXPECT_GT(bq->accept_queue_max, 3) << backlog;
  }
}

TEST(Listener, NeverModeLeavesConnectionsQueued) {
  auto listener = Listener::Start(Loopback(AcceptMode::kNever));
  ASSERT_TRUE(listener.ok()) << listener.status();
  common::UniqueFd a = Connect((*listener)->bound());
  common::UniqueFd b = Connect((*listener)->bound());
  auto q = QueryListenQueue((*listener)->bound().port());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->accept_queue, 2);
  EXPECT_EQ((*listener)->accepted(), 0u);
}

// Accepted or queued is read from sock_diag: the accepted socket has an inode, a queued one not.
TEST(Listener, ImmediateAcceptsAndSockDiagShowsTheSocketAccepted) {
  for (bool multishot : {true, false}) {
    SCOPED_TRACE(multishot ? "multishot" : "accept4 loop");
    ListenerSpec spec = Loopback(AcceptMode::kImmediate);
    spec.allow_multishot = multishot;
    auto listener = Listener::Start(spec);
    ASSERT_TRUE(listener.ok()) << listener.status();
    EXPECT_EQ((*listener)->engine(),
              multishot ? AcceptEngine::kMultishot : AcceptEngine::kAccept4Loop);
    common::UniqueFd client = Connect((*listener)->bound());
    auto client_local = common::LocalAddressOf(client.get());
    ASSERT_TRUE(client_local.ok());
    ASSERT_TRUE(WaitFor([&] { return (*listener)->accepted() == 1; }));
    auto sockets = DumpTcpSockets((*listener)->bound().port(), 1u << TCP_ESTABLISHED);
    ASSERT_TRUE(sockets.ok()) << sockets.status();
    ASSERT_EQ(sockets->size(), 1u);
    EXPECT_EQ((*sockets)[0].remote, client_local->ToString());
    EXPECT_NE((*sockets)[0].inode, 0u);
    EXPECT_TRUE(WasAccepted((*sockets)[0]));

    // Held open: the client sees no EOF until Stop.
    pollfd pfd{client.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&pfd, 1, 50), 0);
    (*listener)->Stop();
    ASSERT_EQ(::poll(&pfd, 1, 2000), 1);
    char byte;
    EXPECT_EQ(::recv(client.get(), &byte, 1, 0), 0);
    EXPECT_EQ((*listener)->accepted(), 1u);
  }
}

TEST(Listener, QueuedSocketHasNoInodeAndIsNotAccepted) {
  auto listener = Listener::Start(Loopback(AcceptMode::kNever));
  ASSERT_TRUE(listener.ok()) << listener.status();
  common::UniqueFd client = Connect((*listener)->bound());
  auto sockets = DumpTcpSockets((*listener)->bound().port(), 1u << TCP_ESTABLISHED);
  ASSERT_TRUE(sockets.ok()) << sockets.status();
  ASSERT_EQ(sockets->size(), 1u);
  EXPECT_EQ((*sockets)[0].inode, 0u);
  EXPECT_FALSE(WasAccepted((*sockets)[0]));
}

TEST(Listener, CloseOnAcceptClosesAtOnceAndTheClosedSocketStillCountsAsAccepted) {
  for (bool multishot : {true, false}) {
    SCOPED_TRACE(multishot ? "multishot" : "accept4 loop");
    ListenerSpec spec = Loopback(AcceptMode::kImmediate);
    spec.close_on_accept = true;
    spec.allow_multishot = multishot;
    auto listener = Listener::Start(spec);
    ASSERT_TRUE(listener.ok()) << listener.status();
    common::UniqueFd client = Connect((*listener)->bound());
    pollfd pfd{client.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 2000), 1);
    char byte;
    EXPECT_EQ(::recv(client.get(), &byte, 1, 0), 0);
    EXPECT_EQ((*listener)->accepted(), 1u);
    // The server closed first and the client still holds its end: FIN_WAIT2, orphaned (or
    // still FIN_WAIT1 for the instant before the client's ACK of the FIN is processed).
    auto sockets = DumpTcpSockets((*listener)->bound().port(), ~(1u << TCP_LISTEN));
    ASSERT_TRUE(sockets.ok()) << sockets.status();
    ASSERT_EQ(sockets->size(), 1u);
    EXPECT_EQ((*sockets)[0].inode, 0u);
    EXPECT_THAT((*sockets)[0].state, ::testing::AnyOf(TCP_FIN_WAIT1, TCP_FIN_WAIT2));
    EXPECT_TRUE(WasAccepted((*sockets)[0]));
  }
}

TEST(Listener, PacedAcceptsOnePerInterval) {
  ListenerSpec spec = Loopback(AcceptMode::kPaced);
  spec.accept_interval = 100ms;
  auto listener = Listener::Start(spec);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const auto start = std::chrono::steady_clock::now();
  std::vector<common::UniqueFd> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(Connect((*listener)->bound()));
  // Nothing before the first tick; then one per tick while the others wait in the queue.
  EXPECT_EQ((*listener)->accepted(), 0u);
  ASSERT_TRUE(WaitFor([&] { return (*listener)->accepted() >= 1; }));
  const auto first = std::chrono::steady_clock::now() - start;
  EXPECT_GE(first, 90ms);
  auto q = QueryListenQueue((*listener)->bound().port());
  ASSERT_TRUE(q.ok());
  EXPECT_LE(q->accept_queue, 2);
  ASSERT_TRUE(WaitFor([&] { return (*listener)->accepted() == 3; }));
  const auto all = std::chrono::steady_clock::now() - start;
  EXPECT_GE(all, 290ms);
  EXPECT_LT(all, 1500ms);
}

TEST(Listener, AcceptQueuePeakIsTheMaximumObserved) {
  auto listener = Listener::Start(Loopback(AcceptMode::kNever));
  ASSERT_TRUE(listener.ok());
  EXPECT_EQ((*listener)->accept_queue_peak(), 0);
  (*listener)->ObserveAcceptQueue(5);
  (*listener)->ObserveAcceptQueue(2);
  (*listener)->ObserveAcceptQueue(9);
  (*listener)->ObserveAcceptQueue(0);
  EXPECT_EQ((*listener)->accept_queue_peak(), 9);
}

TEST(Listener, StopIsIdempotentAndClosesTheListenSocket) {
  auto listener = Listener::Start(Loopback(AcceptMode::kImmediate));
  ASSERT_TRUE(listener.ok());
  const uint16_t port = (*listener)->bound().port();
  (*listener)->Stop();
  (*listener)->Stop();
  EXPECT_EQ(QueryListenQueue(port).status().code(), absl::StatusCode::kNotFound);
  common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  const common::SocketAddress& to = (*listener)->bound();
  EXPECT_NE(::connect(fd.get(), to.get(), to.length), 0);
  EXPECT_EQ(errno, ECONNREFUSED);
}

TEST(Listener, StopWithNeverModeHasNoThreadToJoin) {
  auto listener = Listener::Start(Loopback(AcceptMode::kNever));
  ASSERT_TRUE(listener.ok());
  (*listener)->Stop();
  (*listener)->Stop();
}

TEST(Listener, Ipv6LoopbackImmediate) {
  if (!HaveIpv6Loopback()) GTEST_SKIP() << "no IPv6 on lo";
  ListenerSpec spec = Loopback(AcceptMode::kImmediate);
  spec.address = "::1";
  auto listener = Listener::Start(spec);
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_EQ((*listener)->bound().family(), AF_INET6);
  common::UniqueFd client = Connect((*listener)->bound());
  ASSERT_TRUE(WaitFor([&] { return (*listener)->accepted() == 1; }));
}

TEST(Listener, PacedNeedsExactlyOneOfIntervalAndRate) {
  ListenerSpec both = Loopback(AcceptMode::kPaced);
  both.accept_interval = 10ms;
  both.accept_rate = 100;
  auto listener = Listener::Start(both);
  ASSERT_FALSE(listener.ok());
  EXPECT_THAT(listener.status().message(), HasSubstr("exactly one of"));
  ListenerSpec negative = Loopback(AcceptMode::kPaced);
  negative.accept_rate = -5;
  listener = Listener::Start(negative);
  ASSERT_FALSE(listener.ok());
  EXPECT_THAT(listener.status().message(), HasSubstr("accept_rate"));
}

// 40 accepts/s: 25 ms per tick. With more connections queued than ticks, the count after t
// follows floor(t * rate) (the schedule is absolute), within one tick of scheduling noise.
TEST(Listener, PacedByRateAcceptsOnTheAbsoluteSchedule) {
  ListenerSpec spec = Loopback(AcceptMode::kPaced, 64);
  spec.accept_rate = 40;
  auto listener = Listener::Start(spec);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const auto start = std::chrono::steady_clock::now();
  std::vector<common::UniqueFd> clients;
  for (int i = 0; i < 40; ++i) clients.push_back(Connect((*listener)->bound()));
  std::this_thread::sleep_until(start + 510ms);
  const uint64_t at_half_second = (*listener)->accepted();
  // 20 ticks due by 500 ms, the 21st at 525 ms; connects took a moment at the start.
  EXPECT_GE(at_half_second, 19u);
  EXPECT_LE(at_half_second, 20u);
}

// Pauses count from the flood start; before SetFloodStart no pause applies. Immediate listener,
// pause [100 ms, 400 ms): a connection made inside it waits in the queue until the end.
TEST(Listener, ImmediatePausesFromTheFloodStartAndResumes) {
  for (bool multishot : {true, false}) {
    SCOPED_TRACE(multishot ? "multishot" : "accept4 loop");
    ListenerSpec spec = Loopback(AcceptMode::kImmediate);
    spec.allow_multishot = multishot;
    spec.pauses = {{100ms, 300ms}};
    auto listener = Listener::Start(spec);
    ASSERT_TRUE(listener.ok()) << listener.status();
    // No flood start yet: the window does not apply.
    common::UniqueFd early = Connect((*listener)->bound());
    ASSERT_TRUE(WaitFor([&] { return (*listener)->accepted() == 1; }));

    const auto flood_start = std::chrono::system_clock::now();
    const auto steady_start = std::chrono::steady_clock::now();
    (*listener)->SetFloodStart(flood_start);
    std::this_thread::sleep_until(steady_start + 150ms);
    common::UniqueFd paused = Connect((*listener)->bound());
    std::this_thread::sleep_until(steady_start + 350ms);
    EXPECT_EQ((*listener)->accepted(), 1u);
    auto q = QueryListenQueue((*listener)->bound().port());
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->accept_queue, 1);
    ASSERT_TRUE(WaitFor([&] { return (*listener)->accepted() == 2; }));
    EXPECT_GE(std::chrono::steady_clock::now() - steady_start, 395ms);
  }
}

// Paced at 50/s with a pause [200 ms, 600 ms) from the flood start: ticks inside the pause are
// lost, none are made up afterwards, so by 1000 ms about 50 * (1.0 - 0.4) = 30 accepts.
TEST(Listener, PacedPauseLosesTheTicksInsideIt) {
  ListenerSpec spec = Loopback(AcceptMode::kPaced, 128);
  spec.accept_rate = 50;
  spec.pauses = {{200ms, 400ms}};
  auto listener = Listener::Start(spec);
  ASSERT_TRUE(listener.ok()) << listener.status();
  (*listener)->SetFloodStart(std::chrono::system_clock::now());
  const auto start = std::chrono::steady_clock::now();
  std::vector<common::UniqueFd> clients;
  for (int i = 0; i < 100; ++i) clients.push_back(Connect((*listener)->bound()));
  std::this_thread::sleep_until(start + 400ms);
  const uint64_t mid_pause = (*listener)->accepted();
  EXPECT_NEAR(static_cast<double>(mid_pause), 10.0, 1.0);
  std::this_thread::sleep_until(start + 590ms);
  EXPECT_EQ((*listener)->accepted(), mid_pause) << "accepted during the pause";
  std::this_thread::sleep_until(start + 1000ms);
  EXPECT_NEAR(static_cast<double>((*listener)->accepted()), 30.0, 1.5);
}

}  // namespace
}  // namespace synq::agent
