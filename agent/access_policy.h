// What an agent lets a caller aim at: the flood targets it accepts (an allow-list of CIDRs) and
// the addresses a listener may bind (the host's own). No gRPC here; the service calls these.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net_address.h"

namespace synq::agent {

// An IPv4 or IPv6 network: "10.0.0.0/8", "::1/128".
struct Cidr {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t bytes[16] = {};
  int prefix = 0;

  // Whether `address` (an IPv4-mapped IPv6 address counts as IPv4) lies in the network.
  bool Contains(const common::SocketAddress& address) const;
  std::string ToString() const;
};

// "10.0.0.0/8", "::1/128", or a bare address (= /32, /128). Host bits must be zero.
absl::StatusOr<Cidr> ParseCidr(absl::string_view text);

// The flood targets an agent accepts.
class TargetAllowList {
 public:
  // --allow-targets "CIDR,CIDR,...": each item must parse; an empty list is an error (it would
  // refuse every flood; leave the flag out for the default).
  static absl::StatusOr<TargetAllowList> Parse(absl::string_view flag);
  // Loopback (127.0.0.0/8, ::1/128) plus the subnets directly attached to the interfaces, read
  // again at each check (addresses come and go: embedded hosts get theirs after the agent
  // starts).
  static TargetAllowList HostDefault();

  // The list in force now, as CIDRs.
  std::vector<Cidr> Effective() const;
  std::vector<std::string> EffectiveStrings() const;
  // PERMISSION_DENIED naming the flood, the target and the list when `target` is outside.
  absl::Status CheckTarget(const std::string& flood, const common::SocketAddress& target) const;

 private:
  std::optional<std::vector<Cidr>> fixed_;  // empty = HostDefault
};

// The service's rules: which targets it floods, and whether it serves without TLS where others
// can reach it (reported in HostInfo.insecure).
struct AccessPolicy {
  TargetAllowList targets = TargetAllowList::HostDefault();
  bool insecure = false;
};

// Loopback plus every network directly attached to this host (in the calling thread's network
// namespace): interface address/netmask pairs, and on-link routes (no gateway) of the main
// table other than a default route.
std::vector<Cidr> AttachedNetworks();

// The addresses of this host's interfaces, loopback included.
std::vector<std::string> OwnAddresses();

// A listener's address must be one of the host's own (or the wildcard 0.0.0.0 / ::, or any
// 127.0.0.0/8 address, all of which are local). INVALID_ARGUMENT naming the listener, the
// address and the host's addresses otherwise.
absl::Status CheckListenerAddress(const std::string& listener, const std::string& address);

}  // namespace synq::agent
