// Proves that the agent finds a listener another process owns by port (and address), reads its
// effective backlog and queue from the kernel, names the owning process from /proc, refuses a
// port nothing listens on, and tells accepted server sockets from queued ones by state and inode.
// Real loopback sockets opened by this test stand in for the other process.
#include "agent/run/observed_listener.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/net_address.h"
#include "common/unique_fd.h"

namespace synq::agent {
namespace {

using ::testing::HasSubstr;

common::UniqueFd Bound(const std::string& host, uint16_t port) {
  auto address = common::ParseHostAddress(host, port);
  EXPECT_TRUE(address.ok());
  common::UniqueFd fd(::socket(address->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  EXPECT_EQ(::bind(fd.get(), address->get(), address->length), 0) << std::strerror(errno);
  return fd;
}

uint16_t PortOf(int fd) { return common::LocalAddressOf(fd)->port(); }

common::UniqueFd Connect(const std::string& host, uint16_t port) {
  auto to = common::ParseHostAddress(host, port);
  common::UniqueFd fd(::socket(to->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), to->get(), to->length), 0) << std::strerror(errno);
  return fd;
}

std::string SelfComm() {
  std::ifstream in("/proc/self/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

// The server-side socket whose remote end is the client socket `client`.
std::optional<DiagSocket> ServerSideOf(uint16_t port, int client) {
  const std::string remote = common::LocalAddressOf(client)->ToString();
  auto sockets = DumpTcpSockets(port);
  EXPECT_TRUE(sockets.ok()) << sockets.status();
  for (const DiagSocket& s : *sockets) {
    if (s.remote == remote) return s;
  }
  return std::nullopt;
}

TEST(ObservedListener, FindsTheListenerItsBacklogQueueAndOwningProcess) {
  common::UniqueFd server = Bound("127.0.0.1", 0);
  ASSERT_EQ(::listen(server.get(), 5), 0);
  const uint16_t port = PortOf(server.get());
  auto found = ObservedListener::Find("web", port, "");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->ip(), "127.0.0.1");
  EXPECT_EQ(found->local(), absl::StrCat("127.0.0.1:", port));
  EXPECT_NE(found->inode(), 0u);
  // This process holds the socket; /proc/self/comm is its name as the kernel keeps it.
  EXPECT_EQ(found->owner(), absl::StrCat(SelfComm(), " (pid ", getpid(), ")"));

  // Two connections nobody accepts wait in the accept queue; listen(5) is under somaxconn.
  common::UniqueFd a = Connect("127.0.0.1", port);
  common::UniqueFd b = Connect("127.0.0.1", port);
  auto queue = found->Query();
  ASSERT_TRUE(queue.ok()) << queue.status();
  EXPECT_EQ(queue->accept_queue_max, 5);
  EXPECT_EQ(queue->accept_queue, 2);
  EXPECT_EQ(found->accept_queue_peak(), 2);
}

TEST(ObservedListener, NothingListeningIsNotFoundNamingAddressAndPort) {
  // Bound but not listening: the port is ours and nothing listens on it.
  common::UniqueFd idle = Bound("127.0.0.1", 0);
  const uint16_t port = PortOf(idle.get());
  auto by_port = ObservedListener::Find("web", port, "");
  EXPECT_TRUE(absl::IsNotFound(by_port.status())) << by_port.status();
  EXPECT_THAT(by_port.status().message(), HasSubstr(absl::StrCat("port ", port)));
  auto by_address = ObservedListener::Find("web", port, "127.0.0.1");
  EXPECT_TRUE(absl::IsNotFound(by_address.status()));
  EXPECT_THAT(by_address.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

TEST(ObservedListener, AddressPicksAmongListenersOnOnePort) {
  common::UniqueFd first = Bound("127.0.0.1", 0);
  ASSERT_EQ(::listen(first.get(), 3), 0);
  const uint16_t port = PortOf(first.get());
  common::UniqueFd second = Bound("127.0.0.2", port);
  ASSERT_EQ(::listen(second.get(), 7), 0);

  auto found = ObservedListener::Find("web", port, "127.0.0.2");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->ip(), "127.0.0.2");
  auto queue = found->Query();
  ASSERT_TRUE(queue.ok());
  EXPECT_EQ(queue->accept_queue_max, 7) << "only the picked listener's backlog";

  // A connection to the other listener is not this one's.
  common::UniqueFd to_first = Connect("127.0.0.1", port);
  common::UniqueFd to_second = Connect("127.0.0.2", port);
  std::optional<DiagSocket> s1 = ServerSideOf(port, to_first.get());
  std::optional<DiagSocket> s2 = ServerSideOf(port, to_second.get());
  ASSERT_TRUE(s1 && s2);
  EXPECT_FALSE(found->Owns(*s1));
  EXPECT_TRUE(found->Owns(*s2));
}

TEST(WasAccepted, QueuedAcceptedAndServerClosedSockets) {
  common::UniqueFd server = Bound("127.0.0.1", 0);
  ASSERT_EQ(::listen(server.get(), 8), 0);
  const uint16_t port = PortOf(server.get());
  // The accept queue is FIFO: one accept() takes `taken`'s server side and leaves `queued`'s.
  common::UniqueFd taken = Connect("127.0.0.1", port);
  common::UniqueFd queued = Connect("127.0.0.1", port);
  common::UniqueFd server_side(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server_side.valid());
  EXPECT_EQ(common::PeerAddressOf(server_side.get())->ToString(),
            common::LocalAddressOf(taken.get())->ToString());

  std::optional<DiagSocket> accepted_side = ServerSideOf(port, taken.get());
  std::optional<DiagSocket> queued_side = ServerSideOf(port, queued.get());
  ASSERT_TRUE(accepted_side && queued_side);
  EXPECT_EQ(accepted_side->state, TCP_ESTABLISHED);
  EXPECT_NE(accepted_side->inode, 0u) << "accept() grafts a file onto the socket";
  EXPECT_TRUE(WasAccepted(*accepted_side));
  EXPECT_EQ(queued_side->state, TCP_ESTABLISHED);
  EXPECT_EQ(queued_side->inode, 0u) << "a queued socket has no file";
  EXPECT_FALSE(WasAccepted(*queued_side));

  // The server answers and closes: its socket goes FIN_WAIT2 (the client has not closed yet)
  // and loses its file; it still counts as accepted.
  server_side.Reset();
  std::optional<DiagSocket> closed_side;
  for (int i = 0; i < 100; ++i) {
    closed_side = ServerSideOf(port, taken.get());
    if (closed_side && closed_side->state == TCP_FIN_WAIT2) break;
    ::usleep(10'000);
  }
  ASSERT_TRUE(closed_side);
  EXPECT_EQ(closed_side->state, TCP_FIN_WAIT2);
  EXPECT_EQ(closed_side->inode, 0u);
  EXPECT_TRUE(WasAccepted(*closed_side));

  // The client closes too: the server side waits in TIME_WAIT, still accepted.
  const std::string client = common::LocalAddressOf(taken.get())->ToString();
  taken.Reset();
  std::optional<DiagSocket> time_wait;
  for (int i = 0; i < 100 && !time_wait; ++i) {
    auto sockets = DumpTcpSockets(port);
    ASSERT_TRUE(sockets.ok());
    for (const DiagSocket& s : *sockets) {
      if (s.remote == client && s.state == TCP_TIME_WAIT) time_wait = s;
    }
    if (!time_wait) ::usleep(10'000);
  }
  ASSERT_TRUE(time_wait) << "no TIME_WAIT server socket for " << client;
  EXPECT_TRUE(WasAccepted(*time_wait));
}

}  // namespace
}  // namespace synq::agent
