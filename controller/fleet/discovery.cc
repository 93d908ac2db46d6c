#include "controller/fleet/discovery.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <set>
#include <tuple>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace synq::controller::fleet {
namespace {

struct Lookup {
  bool done = false;
  int status = ARES_SUCCESS;
  std::set<std::string> endpoints;
};

void OnAddrInfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  auto* lookup = static_cast<Lookup*>(arg);
  lookup->done = true;
  lookup->status = status;
  if (result == nullptr) return;
  for (ares_addrinfo_node* n = result->nodes; n != nullptr; n = n->ai_next) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (n->ai_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
      inet_ntop(AF_INET, &sin->sin_addr, text.data(), text.size());
      lookup->endpoints.insert(absl::StrCat(text.data(), ":", ntohs(sin->sin_port)));
    } else if (n->ai_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
      inet_ntop(AF_INET6, &sin6->sin6_addr, text.data(), text.size());
      lookup->endpoints.insert(absl::StrCat("[", text.data(), "]:", ntohs(sin6->sin6_port)));
    }
  }
  ares_freeaddrinfo(result);
}

// (kind, address bytes, port, text): kind 0 = IPv4, 1 = IPv6, 2 = anything else.
using SortKey = std::tuple<int, std::array<uint8_t, 16>, uint32_t, std::string>;

SortKey KeyOf(const std::string& endpoint) {
  SortKey key{2, {}, 0, endpoint};
  absl::string_view text = endpoint;
  const size_t colon = text.rfind(':');
  uint32_t port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(text.substr(colon + 1), &port)) {
    return key;
  }
  absl::string_view host = text.substr(0, colon);
  const bool bracketed = absl::ConsumePrefix(&host, "[") && absl::ConsumeSuffix(&host, "]");
  const std::string h(host);
  std::array<uint8_t, 16> bytes{};
  if (!bracketed && inet_pton(AF_INET, h.c_str(), bytes.data()) == 1) return {0, bytes, port, ""};
  if (bracketed && inet_pton(AF_INET6, h.c_str(), bytes.data()) == 1) return {1, bytes, port, ""};
  return key;
}

std::string Asked(const DiscoverTarget& target) {
  return target.dns_server.empty() ? "the system resolver"
                                   : absl::StrCat("DNS server ", target.dns_server);
}

}  // namespace

void SortEndpoints(std::vector<std::string>& endpoints) {
  std::sort(endpoints.begin(), endpoints.end(),
            [](const std::string& a, const std::string& b) { return KeyOf(a) < KeyOf(b); });
  endpoints.erase(std::unique(endpoints.begin(), endpoints.end()), endpoints.end());
}

absl::StatusOr<std::vector<std::string>> DiscoverAgents(const DiscoverTarget& target,
                                                        std::chrono::milliseconds timeout) {
  static std::once_flag init_once;
  std::call_once(init_once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  ares_options options{};
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  options.timeout = static_cast<int>(timeout.count());
  options.tries = 2;
  // A given server is asked alone: neither /etc/hosts nor the system's resolvers answer for it.
  char dns_only[] = "b";
  if (!target.dns_server.empty()) {
    options.lookups = dns_only;
    mask |= ARES_OPT_LOOKUPS;
  }
  ares_channel channel = nullptr;
  if (int rc = ares_init_options(&channel, &options, mask); rc != ARES_SUCCESS) {
    return absl::InternalError(absl::StrCat("c-ares init: ", ares_strerror(rc)));
  }
  absl::Cleanup destroy = [channel] { ares_destroy(channel); };
  if (!target.dns_server.empty()) {
    if (int rc = ares_set_servers_ports_csv(channel, target.dns_server.c_str());
        rc != ARES_SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("DNS server ", target.dns_server, ": ", ares_strerror(rc)));
    }
  }
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;  // A and AAAA
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NUMERICSERV;
  Lookup lookup;
  const std::string port = absl::StrCat(target.port);
  ares_getaddrinfo(channel, target.name.c_str(), port.c_str(), &hints, OnAddrInfo, &lookup);
  while (!lookup.done) {
    std::array<ares_socket_t, ARES_GETSOCK_MAXNUM> socks{};
    const int bits = ares_getsock(channel, socks.data(), ARES_GETSOCK_MAXNUM);
    std::vector<pollfd> fds;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
      if (events != 0) fds.push_back({socks[static_cast<size_t>(i)], events, 0});
    }
    timeval max_wait{1, 0};
    timeval wait{};
    const timeval* tv = ares_timeout(channel, &max_wait, &wait);
    const int ms = static_cast<int>(tv->tv_sec * 1000 + tv->tv_usec / 1000);
    const int ready = poll(fds.data(), fds.size(), ms);
    if (ready <= 0) {
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
      continue;
    }
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      ares_process_fd(channel, (p.revents & (POLLIN | POLLERR | POLLHUP)) ? p.fd : ARES_SOCKET_BAD,
                      (p.revents & POLLOUT) ? p.fd : ARES_SOCKET_BAD);
    }
  }
  switch (lookup.status) {
    case ARES_SUCCESS:
      break;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
      return absl::NotFoundError(
          absl::StrCat("no A or AAAA record for ", target.name, " (asked ", Asked(target), ")"));
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
      return absl::UnavailableError(absl::StrCat(Asked(target), " did not answer for ", target.name,
                                                 " within 2 tries of ", timeout.count(), " ms"));
    default:
      return absl::UnavailableError(absl::StrCat("looking up ", target.name, " (asked ",
                                                 Asked(target),
                                                 "): ", ares_strerror(lookup.status)));
  }
  std::vector<std::string> out(lookup.endpoints.begin(), lookup.endpoints.end());
  if (out.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no A or AAAA record for ", target.name, " (asked ", Asked(target), ")"));
  }
  SortEndpoints(out);
  return out;
}

}  // namespace synq::controller::fleet
