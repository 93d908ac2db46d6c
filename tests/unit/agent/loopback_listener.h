// A listening TCP socket on 127.0.0.1 with a kernel-chosen port, for the flood and run tests:
// nobody accepts from it unless the test does, so it holds backlog + 1 connections (capped by
// the namespace's net.core.somaxconn, 4096 by default) and drops later SYNs.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/status/statusor.h"
#include "common/net_address.h"
#include "common/unique_fd.h"

namespace synq::agent {

// `flags` adds socket type flags (SOCK_NONBLOCK for a listener served by epoll). A failure is
// a test failure; the fd is then invalid or not listening.
inline common::UniqueFd Listen(int backlog, int flags = 0) {
  common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
  EXPECT_TRUE(fd.valid()) << std::strerror(errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), backlog), 0) << std::strerror(errno);
  return fd;
}

// The address a socket is bound to (a listener's target address); empty after a test failure.
inline common::SocketAddress AddressOf(const common::UniqueFd& fd) {
  absl::StatusOr<common::SocketAddress> addr = common::LocalAddressOf(fd.get());
  EXPECT_TRUE(addr.ok()) << addr.status();
  return addr.ok() ? *addr : common::SocketAddress{};
}

}  // namespace synq::agent
