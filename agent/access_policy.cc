#include "agent/access_policy.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <net/route.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace synq::agent {
namespace {

// The address bytes of `a` (IPv4-mapped IPv6 becomes IPv4); family 0 when neither.
int AddressBytes(const common::SocketAddress& a, uint8_t out[16]) {
  if (a.family() == AF_INET) {
    std::memcpy(out, &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr, 4);
    return AF_INET;
  }
  if (a.family() == AF_INET6) {
    const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      std::memcpy(out, v6.s6_addr + 12, 4);
      return AF_INET;
    }
    std::memcpy(out, v6.s6_addr, 16);
    return AF_INET6;
  }
  return 0;
}

// Clears the host bits beyond `prefix`.
void Mask(uint8_t bytes[16], int prefix, int length) {
  for (int i = 0; i < length; ++i) {
    const int bits = std::clamp(prefix - i * 8, 0, 8);
    bytes[i] &= static_cast<uint8_t>(0xff00 >> bits);
  }
}

int PrefixOf(const sockaddr* netmask) {
  int prefix = 0;
  const uint8_t* p = nullptr;
  int length = 0;
  if (netmask->sa_family == AF_INET) {
    p = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(netmask)->sin_addr);
    length = 4;
  } else {
    p = reinterpret_cast<const sockaddr_in6*>(netmask)->sin6_addr.s6_addr;
    length = 16;
  }
  for (int i = 0; i < length; ++i) prefix += __builtin_popcount(p[i]);
  return prefix;
}

Cidr Network(int family, const uint8_t* bytes, int prefix) {
  Cidr c;
  c.family = family;
  const int length = family == AF_INET ? 4 : 16;
  std::memcpy(c.bytes, bytes, length);
  c.prefix = prefix;
  Mask(c.bytes, prefix, length);
  return c;
}

void AddUnique(std::vector<Cidr>& list, const Cidr& c) {
  for (const Cidr& o : list) {
    if (o.family == c.family && o.prefix == c.prefix && std::memcmp(o.bytes, c.bytes, 16) == 0) {
      return;
    }
  }
  list.push_back(c);
}

// On-link IPv4 routes of the main table: /proc/net/route rows with no gateway, up, not a
// reject/blackhole route (those show as interface "*"), not the default route.
void AddRoutesV4(std::vector<Cidr>& out) {
  std::ifstream in("/proc/net/route");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string iface, dest, gateway, flags_hex, refcnt, use, metric, mask;
    if (!(row >> iface >> dest >> gateway >> flags_hex >> refcnt >> use >> metric >> mask)) {
      continue;
    }
    uint32_t d = 0, g = 0, m = 0, flags = 0;
    if (!absl::SimpleHexAtoi(dest, &d) || !absl::SimpleHexAtoi(gateway, &g) ||
        !absl::SimpleHexAtoi(mask, &m) || !absl::SimpleHexAtoi(flags_hex, &flags)) {
      continue;
    }
    if (iface == "*" || g != 0 || (flags & RTF_UP) == 0 || (flags & RTF_REJECT) != 0 || m == 0) {
      continue;
    }
    // The file holds the addresses in network byte order, printed as a host-order number.
    uint8_t bytes[16] = {};
    std::memcpy(bytes, &d, 4);
    in_addr mask_addr{};
    mask_addr.s_addr = m;
    out.push_back(Network(AF_INET, bytes, __builtin_popcount(mask_addr.s_addr)));
  }
}

// On-link IPv6 routes: no next hop, up, not reject, not local (own addresses), not multicast.
void AddRoutesV6(std::vector<Cidr>& out) {
  std::ifstream in("/proc/net/ipv6_route");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string dest, dest_len, src, src_len, next_hop, metric, refcnt, use, flags_hex, iface;
    if (!(row >> dest >> dest_len >> src >> src_len >> next_hop >> metric >> refcnt >> use >>
          flags_hex >> iface)) {
      continue;
    }
    uint32_t flags = 0, prefix = 0;
    if (!absl::SimpleHexAtoi(flags_hex, &flags) || !absl::SimpleHexAtoi(dest_len, &prefix)) {
      continue;
    }
    if (next_hop != std::string(32, '0') || iface == "lo" || (flags & RTF_UP) == 0 ||
        (flags & RTF_REJECT) != 0 || (flags & 0x80000000u) != 0 || prefix == 0 ||
        dest.size() != 32 || absl::StartsWith(dest, "ff")) {
      continue;
    }
    uint8_t bytes[16] = {};
    for (int i = 0; i < 16; ++i) {
      uint32_t b = 0;
      absl::SimpleHexAtoi(dest.substr(i * 2, 2), &b);
      bytes[i] = static_cast<uint8_t>(b);
    }
    out.push_back(Network(AF_INET6, bytes, static_cast<int>(prefix)));
  }
}

}  // namespace

bool Cidr::Contains(const common::SocketAddress& address) const {
  uint8_t bytes[16] = {};
  const int f = AddressBytes(address, bytes);
  if (f != family) return false;
  Mask(bytes, prefix, family == AF_INET ? 4 : 16);
  return std::memcmp(bytes, this->bytes, family == AF_INET ? 4 : 16) == 0;
}

std::string Cidr::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes, buf, sizeof buf);
  return absl::StrCat(buf, "/", prefix);
}

absl::StatusOr<Cidr> ParseCidr(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  const size_t slash = text.find('/');
  const std::string host(text.substr(0, slash));
  Cidr c;
  if (inet_pton(AF_INET, host.c_str(), c.bytes) == 1) {
    c.family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), c.bytes) == 1) {
    c.family = AF_INET6;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': expected ADDRESS/PREFIX (10.0.0.0/8, fd00::/64)"));
  }
  const int max = c.family == AF_INET ? 32 : 128;
  c.prefix = max;
  if (slash != absl::string_view::npos &&
      (!absl::SimpleAtoi(text.substr(slash + 1), &c.prefix) || c.prefix < 0 || c.prefix > max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': the prefix length must be 0..", max));
  }
  Cidr masked = c;
  Mask(masked.bytes, c.prefix, max / 8);
  if (std::memcmp(masked.bytes, c.bytes, 16) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': host bits are set (did you mean ", masked.ToString(), "?)"));
  }
  return c;
}

absl::StatusOr<TargetAllowList> TargetAllowList::Parse(absl::string_view flag) {
  TargetAllowList list;
  list.fixed_.emplace();
  for (absl::string_view item : absl::StrSplit(flag, ',', absl::SkipWhitespace())) {
    auto c = ParseCidr(item);
    if (!c.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--allow-targets: ", c.status().message()));
    }
    AddUnique(*list.fixed_, *c);
  }
  if (list.fixed_->empty()) {
    return absl::InvalidArgumentError(
        "--allow-targets: empty; give at least one CIDR, or leave the flag out for loopback "
        "plus the attached subnets");
  }
  return list;
}

TargetAllowList TargetAllowList::HostDefault() { return TargetAllowList(); }

std::vector<Cidr> TargetAllowList::Effective() const {
  if (fixed_.has_value()) return *fixed_;
  return AttachedNetworks();
}

std::vector<std::string> TargetAllowList::EffectiveStrings() const {
  std::vector<std::string> out;
  for (const Cidr& c : Effective()) out.push_back(c.ToString());
  return out;
}

absl::Status TargetAllowList::CheckTarget(const std::string& flood,
                                          const common::SocketAddress& target) const {
  const std::vector<Cidr> list = Effective();
  for (const Cidr& c : list) {
    if (c.Contains(target)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("floods.", flood, ".target: ", target.HostString(),
                   " is outside the targets this agent accepts (--allow-targets ",
                   absl::StrJoin(EffectiveStrings(), ","), ")"));
}

std::vector<Cidr> AttachedNetworks() {
  std::vector<Cidr> out;
  const uint8_t v4_loopback[16] = {127};
  AddUnique(out, Network(AF_INET, v4_loopback, 8));
  uint8_t v6_loopback[16] = {};
  v6_loopback[15] = 1;
  AddUnique(out, Network(AF_INET6, v6_loopback, 128));
  std::vector<Cidr> found;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || i->ifa_netmask == nullptr) continue;
      const int family = i->ifa_addr->sa_family;
      if (family != AF_INET && family != AF_INET6) continue;
      common::SocketAddress addr;
      addr.length = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
      std::memcpy(&addr.storage, i->ifa_addr, addr.length);
      uint8_t bytes[16] = {};
      AddressBytes(addr, bytes);
      found.push_back(Network(family, bytes, PrefixOf(i->ifa_netmask)));
    }
    freeifaddrs(list);
  }
  AddRoutesV4(found);
  AddRoutesV6(found);
  for (const Cidr& c : found) AddUnique(out, c);
  return out;
}

std::vector<std::string> OwnAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    const int family = i->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    common::SocketAddress addr;
    addr.length = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    std::memcpy(&addr.storage, i->ifa_addr, addr.length);
    std::string text = addr.HostString();
    if (std::find(out.begin(), out.end(), text) == out.end()) out.push_back(std::move(text));
  }
  freeifaddrs(list);
  return out;
}

absl::Status CheckListenerAddress(const std::string& listener, const std::string& address) {
  if (address.empty() || address == "0.0.0.0" || address == "::") return absl::OkStatus();
  auto parsed = common::ParseHostAddress(address, 0);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("listeners.", listener, ".address: ", parsed.status().message()));
  }
  // The kernel treats all of 127.0.0.0/8 as local (the lo route is 127.0.0.0/8 scope host).
  const auto loopback = ParseCidr("127.0.0.0/8");
  if (loopback->Contains(*parsed)) return absl::OkStatus();
  const std::string text = parsed->HostString();
  const std::vector<std::string> own = OwnAddresses();
  if (std::find(own.begin(), own.end(), text) != own.end()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("listeners.", listener, ".address: ", address,
                   " is not an address of this host (its addresses: ", absl::StrJoin(own, " "),
                   "; or 0.0.0.0 / :: for all)"));
}

}  // namespace synq::agent
