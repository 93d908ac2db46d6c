// Proves DumpTcpSockets / QueryListenQueue read the kernel's view over NETLINK_SOCK_DIAG: the
// effective backlog (wqueue), accept-queue depth (rqueue), ESTABLISHED 4-tuples, IPv6, NotFound.
#include "agent/kernel/sock_diag.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <fstream>

#include "common/net_address.h"
#include "common/unique_fd.h"

namespace synq::agent {
namespace {

// A listening socket on `host`:0 with listen(fd, backlog) that never accepts.
struct TestListener {
  common::UniqueFd fd;
  common::SocketAddress bound;
};

TestListener Listen(const std::string& host, int backlog) {
  TestListener out;
  auto address = common::ParseHostAddress(host, 0);
  EXPECT_TRUE(address.ok());
  out.fd.Reset(::socket(address->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(out.fd.valid());
  EXPECT_EQ(::bind(out.fd.get(), address->get(), address->length), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(out.fd.get(), backlog), 0);
  auto bound = common::LocalAddressOf(out.fd.get());
  EXPECT_TRUE(bound.ok());
  out.bound = *bound;
  return out;
}

common::UniqueFd Connect(const common::SocketAddress& to) {
  common::UniqueFd fd(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), to.get(), to.length), 0) << std::strerror(errno);
  return fd;
}

int64_t Somaxconn() {
  std::ifstream in("/proc/sys/net/core/somaxconn");
  int64_t value = -1;
  in >> value;
  return value;
}

bool HaveIpv6Loopback() {
  auto address = common::ParseHostAddress("::1", 0);
  common::UniqueFd fd(::socket(AF_INET6, SOCK_STREAM, 0));
  return fd && ::bind(fd.get(), address->get(), address->length) == 0;
}

TEST(TcpStateName, NamesStates) {
  EXPECT_EQ(TcpStateName(TCP_ESTABLISHED), "ESTABLISHED");
  EXPECT_EQ(TcpStateName(TCP_SYN_RECV), "SYN_RECV");
  EXPECT_EQ(TcpStateName(TCP_LISTEN), "LISTEN");
  EXPECT_EQ(TcpStateName(TCP_TIME_WAIT), "TIME_WAIT");
  EXPECT_EQ(TcpStateName(99), "UNKNOWN(99)");
}

TEST(QueryListenQueue, BacklogThreeIsTheEffectiveMax) {
  TestListener l = Listen("127.0.0.1", 3);
  auto q = QueryListenQueue(l.bound.port());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->accept_queue_max, 3);
  EXPECT_EQ(q->accept_queue, 0);
  EXPECT_GE(q->syn_recv, 0);
}

TEST(QueryListenQueue, TwoUnacceptedClientsMakeDepthTwo) {
  TestListener l = Listen("127.0.0.1", 3);
  common::UniqueFd a = Connect(l.bound);
  common::UniqueFd b = Connect(l.bound);
  auto q = QueryListenQueue(l.bound.port());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->accept_queue, 2);
  EXPECT_EQ(q->accept_queue_max, 3);
  // Loopback handshakes complete at once: SYN_RECV is normally 0, but the field is filled.
  EXPECT_GE(q->syn_recv, 0);
}

TEST(QueryListenQueue, BacklogMinusOneBecomesSomaxconn) {
  const int64_t somaxconn = Somaxconn();
  ASSERT_GT(somaxconn, 0);
  TestListener l = Listen("127.0.0.1", -1);
  auto q = QueryListenQueue(l.bound.port());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->accept_queue_max, somaxconn);
}

TEST(QueryListenQueue, NothingListeningIsNotFound) {
  // A port that was just ours and is now closed: nothing listens there.
  uint16_t port = 0;
  {
    TestListener l = Listen("127.0.0.1", 1);
    port = l.bound.port();
  }
  auto q = QueryListenQueue(port);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kNotFound);
}

TEST(DumpTcpSockets, AcceptedConnectionIsEstablishedWithItsFourTuple) {
  TestListener l = Listen("127.0.0.1", 3);
  common::UniqueFd client = Connect(l.bound);
  common::UniqueFd server(::accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server.valid());
  const std::string server_side = l.bound.ToString();
  const std::string client_side = common::LocalAddressOf(client.get())->ToString();

  auto sockets = DumpTcpSockets(l.bound.port());
  ASSERT_TRUE(sockets.ok()) << sockets.status();
  int listening = 0;
  int established = 0;
  for (const DiagSocket& s : *sockets) {
    EXPECT_EQ(s.local, server_side);  // only the port asked for
    if (s.state == TCP_LISTEN) {
      ++listening;
      EXPECT_EQ(s.wqueue, 3u);
      EXPECT_NE(s.inode, 0u);
    }
    if (s.state == TCP_ESTABLISHED) {
      ++established;
      EXPECT_EQ(s.remote, client_side);
      EXPECT_EQ(TcpStateName(s.state), "ESTABLISHED");
    }
  }
  EXPECT_EQ(listening, 1);
  EXPECT_EQ(established, 1);

  // All ports: the client end shows up with the 4-tuple reversed.
  auto all = DumpTcpSockets(0, 1u << TCP_ESTABLISHED);
  ASSERT_TRUE(all.ok()) << all.status();
  bool client_found = false;
  for (const DiagSocket& s : *all) {
    EXPECT_EQ(s.state, TCP_ESTABLISHED);
    if (s.local == client_side && s.remote == server_side) client_found = true;
  }
  EXPECT_TRUE(client_found);
}

TEST(DumpTcpSockets, StateMaskFilters) {
  TestListener l = Listen("127.0.0.1", 3);
  common::UniqueFd client = Connect(l.bound);
  auto listen_only = DumpTcpSockets(l.bound.port(), 1u << TCP_LISTEN);
  ASSERT_TRUE(listen_only.ok()) << listen_only.status();
  ASSERT_EQ(listen_only->size(), 1u);
  EXPECT_EQ((*listen_only)[0].state, TCP_LISTEN);
  EXPECT_EQ((*listen_only)[0].rqueue, 1u);
}

TEST(QueryListenQueue, Ipv6Loopback) {
  if (!HaveIpv6Loopback()) GTEST_SKIP() << "no IPv6 on lo";
  TestListener l = Listen("::1", 3);
  common::UniqueFd a = Connect(l.bound);
  auto q = QueryListenQueue(l.bound.port());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->accept_queue_max, 3);
  EXPECT_EQ(q->accept_queue, 1);

  auto sockets = DumpTcpSockets(l.bound.port(), 1u << TCP_LISTEN);
  ASSERT_TRUE(sockets.ok());
  ASSERT_EQ(sockets->size(), 1u);
  EXPECT_EQ((*sockets)[0].local, l.bound.ToString());  // "[::1]:port"
}

}  // namespace
}  // namespace synq::agent
