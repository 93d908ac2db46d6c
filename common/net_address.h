// Socket addresses: parse "ip:port" / "[v6]:port", format sockaddrs back, for IPv4 and IPv6.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace synq::common {

// A sockaddr_in or sockaddr_in6 with its length.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  uint16_t port() const;
  void set_port(uint16_t port);
  // "127.0.0.1:80" or "[::1]:80".
  std::string ToString() const;
  // The address part only: "127.0.0.1" or "::1".
  std::string HostString() const;
};

// Parses "1.2.3.4:80", "[::1]:80". A missing or out-of-range port is an error.
absl::StatusOr<SocketAddress> ParseSocketAddress(absl::string_view text);

// Parses a bare address ("1.2.3.4", "::1") with the given port.
absl::StatusOr<SocketAddress> ParseHostAddress(absl::string_view host, uint16_t port);

// The local address of a socket (getsockname) / its peer (getpeername).
absl::StatusOr<SocketAddress> LocalAddressOf(int fd);
absl::StatusOr<SocketAddress> PeerAddressOf(int fd);

}  // namespace synq::common
