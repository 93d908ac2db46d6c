#include "common/net_address.h"

#include <arpa/inet.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace synq::common {

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
}

std::string SocketAddress::HostString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof(buf));
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof(buf));
  }
  return buf;
}

std::string SocketAddress::ToString() const {
  if (family() == AF_INET6) return absl::StrCat("[", HostString(), "]:", port());
  return absl::StrCat(HostString(), ":", port());
}

absl::StatusOr<SocketAddress> ParseHostAddress(absl::string_view host, uint16_t port) {
  SocketAddress out;
  const std::string h(host);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.length = sizeof(sockaddr_in);
    return out;
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.length = sizeof(sockaddr_in6);
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", host, "' is not an IPv4 or IPv6 address"));
}

absl::StatusOr<SocketAddress> ParseSocketAddress(absl::string_view text) {
  absl::string_view host;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find("]:");
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not [ADDRESS]:PORT"));
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos || text.find(':') != colon) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not ADDRESS:PORT"));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': port must be a number from 0 to 65535"));
  }
  return ParseHostAddress(host, static_cast<uint16_t>(port));
}

namespace {
template <typename F>
absl::StatusOr<SocketAddress> NameOf(int fd, F fn, const char* what) {
  SocketAddress out;
  out.length = sizeof(out.storage);
  if (fn(fd, out.get(), &out.length) != 0) return absl::ErrnoToStatus(errno, what);
  return out;
}
}  // namespace

absl::StatusOr<SocketAddress> LocalAddressOf(int fd) {
  return NameOf(fd, ::getsockname, "getsockname");
}
absl::StatusOr<SocketAddress> PeerAddressOf(int fd) {
  return NameOf(fd, ::getpeername, "getpeername");
}

}  // namespace synq::common
