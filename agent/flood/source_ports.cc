#include "agent/flood/source_ports.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace synq::agent {
namespace {

struct MnlCloser {
  void operator()(mnl_socket* nl) const { mnl_socket_close(nl); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<uint16_t> ParsePort(absl::string_view text, absl::string_view what) {
  uint32_t port = 0;
  if (!absl::SimpleAtoi(text, &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": '", text, "' is not a port"));
  }
  return static_cast<uint16_t>(port);
}

// Sends one request and feeds every reply message to `cb` until NLMSG_DONE / the ACK.
absl::Status NetlinkExchange(nlmsghdr* request, mnl_cb_t cb, void* data) {
  MnlSocket nl(mnl_socket_open(NETLINK_ROUTE));
  if (nl == nullptr) return absl::ErrnoToStatus(errno, "netlink socket (NETLINK_ROUTE)");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::ErrnoToStatus(errno, "netlink bind");
  }
  const uint32_t seq = request->nlmsg_seq = static_cast<uint32_t>(time(nullptr));
  const uint32_t portid = mnl_socket_get_portid(nl.get());
  if (mnl_socket_sendto(nl.get(), request, request->nlmsg_len) < 0) {
    return absl::ErrnoToStatus(errno, "netlink send");
  }
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  while (true) {
    const ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) return absl::ErrnoToStatus(errno, "netlink receive");
    const int ret = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, portid, cb, data);
    if (ret < 0) return absl::ErrnoToStatus(errno, "netlink reply");
    if (ret == MNL_CB_STOP) return absl::OkStatus();
  }
}

std::string AddressText(int family, const void* raw) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, raw, buf, sizeof(buf));
  return buf;
}

const void* RawAddress(const common::SocketAddress& a) {
  if (a.family() == AF_INET) return &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr;
  return &reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr;
}

// The attributes after a message's fixed header (libmnl's mnl_attr_for_each is C-only).
std::vector<const nlattr*> Attributes(const nlmsghdr* nlh, size_t header) {
  std::vector<const nlattr*> out;
  const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, header));
       mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)));
       a = mnl_attr_next(a)) {
    out.push_back(a);
  }
  return out;
}

size_t RawLength(int family) { return family == AF_INET ? sizeof(in_addr) : sizeof(in6_addr); }

}  // namespace

absl::StatusOr<std::vector<PortRange>> ParsePortList(absl::string_view text,
                                                     absl::string_view what) {
  std::vector<PortRange> out;
  for (absl::string_view item :
       absl::StrSplit(text, absl::ByAnyChar(", \t\n"), absl::SkipEmpty())) {
    std::vector<absl::string_view> ends = absl::StrSplit(item, '-');
    if (ends.size() > 2) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": '", item, "' is not a port range"));
    }
    PortRange r;
    auto first = ParsePort(ends[0], what);
    if (!first.ok()) return first.status();
    r.first = r.last = *first;
    if (ends.size() == 2) {
      auto last = ParsePort(ends[1], what);
      if (!last.ok()) return last.status();
      r.last = *last;
    }
    if (r.last < r.first) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": '", item, "' ends before it starts"));
    }
    out.push_back(r);
  }
  return out;
}

absl::StatusOr<PortFacts> ReadPortFacts(const std::string& proc_sys_dir) {
  PortFacts facts;
  const std::string range_path = proc_sys_dir + "/net/ipv4/ip_local_port_range";
  auto range = ReadFile(range_path);
  if (!range.ok()) return range.status();
  std::vector<absl::string_view> ends =
      absl::StrSplit(absl::StripAsciiWhitespace(*range), absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (ends.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(range_path, ": '", *range, "' is not 'FIRST LAST'"));
  }
  auto first = ParsePort(ends[0], range_path);
  if (!first.ok()) return first.status();
  auto last = ParsePort(ends[1], range_path);
  if (!last.ok()) return last.status();
  facts.local_range = {*first, *last};
  const std::string reserved_path = proc_sys_dir + "/net/ipv4/ip_local_reserved_ports";
  auto reserved = ReadFile(reserved_path);
  if (!reserved.ok()) return reserved.status();
  auto list = ParsePortList(*reserved, reserved_path);
  if (!list.ok()) return list.status();
  facts.reserved = *std::move(list);
  if (auto tw = ReadFile(proc_sys_dir + "/net/ipv4/tcp_tw_reuse"); tw.ok()) {
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*tw), &facts.tw_reuse)) facts.tw_reuse = 0;
  }
  return facts;
}

std::vector<PortRange> UsablePorts(PortRange range, const std::vector<PortRange>& reserved) {
  std::vector<PortRange> sorted = reserved;
  std::sort(sorted.begin(), sorted.end(),
            [](const PortRange& a, const PortRange& b) { return a.first < b.first; });
  std::vector<PortRange> out;
  uint32_t next = range.first;  // first port not yet placed or excluded
  for (const PortRange& r : sorted) {
    if (r.last < next || r.first > range.last) continue;
    if (r.first > next)
      out.push_back({static_cast<uint16_t>(next), static_cast<uint16_t>(r.first - 1)});
    next = static_cast<uint32_t>(r.last) + 1;
    if (next > range.last) break;
  }
  if (next <= range.last) out.push_back({static_cast<uint16_t>(next), range.last});
  return out;
}

uint64_t CountPorts(const std::vector<PortRange>& ranges) {
  uint64_t n = 0;
  for (const PortRange& r : ranges) n += static_cast<uint64_t>(r.last) - r.first + 1;
  return n;
}

uint64_t CountPorts(const SourcePorts& ports) {
  const uint32_t stride = std::max<uint32_t>(ports.stride, 1);
  uint64_t n = 0;
  for (const PortRange& r : ports.ranges) {
    // Ports p in [first, last] with p % stride == offset: count of such p <= x is
    // floor((x - offset) / stride) + 1 for x >= offset.
    auto upto = [&](int64_t x) -> int64_t {
      if (x < static_cast<int64_t>(ports.offset)) return 0;
      return (x - ports.offset) / stride + 1;
    };
    n += static_cast<uint64_t>(upto(r.last) - upto(static_cast<int64_t>(r.first) - 1));
  }
  return n;
}

absl::StatusOr<RouteFacts> LookupRoute(const common::SocketAddress& destination) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<unsigned char>(destination.family());
  rtm->rtm_dst_len = destination.family() == AF_INET ? 32 : 128;
  mnl_attr_put(nlh, RTA_DST, RawLength(destination.family()), RawAddress(destination));
  struct Data {
    RouteFacts facts;
    bool seen = false;
  } data;
  auto cb = [](const nlmsghdr* reply, void* arg) -> int {
    auto* d = static_cast<Data*>(arg);
    if (reply->nlmsg_type != RTM_NEWROUTE) return MNL_CB_OK;
    const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(reply));
    d->seen = true;
    d->facts.type = r->rtm_type;
    for (const nlattr* attr : Attributes(reply, sizeof(rtmsg))) {
      switch (mnl_attr_get_type(attr)) {
        case RTA_OIF:
          d->facts.interface = static_cast<int>(mnl_attr_get_u32(attr));
          break;
        case RTA_PREFSRC:
          d->facts.preferred_source = AddressText(r->rtm_family, mnl_attr_get_payload(attr));
          break;
        default:
          break;
      }
    }
    return MNL_CB_STOP;
  };
  absl::Status s = NetlinkExchange(nlh, cb, &data);
  if (!s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("route to ", destination.HostString(), ": ", s.message()));
  }
  if (!data.seen) {
    return absl::NotFoundError(absl::StrCat("no route to ", destination.HostString()));
  }
  return data.facts;
}

absl::StatusOr<std::vector<std::string>> InterfaceAddresses(int index, int family,
                                                            bool link_scope_ok) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETADDR;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<unsigned char>(family);
  struct Data {
    int index, family;
    bool link_scope_ok;
    std::vector<std::string> out;
  } data{index, family, link_scope_ok, {}};
  auto cb = [](const nlmsghdr* reply, void* arg) -> int {
    auto* d = static_cast<Data*>(arg);
    if (reply->nlmsg_type != RTM_NEWADDR) return MNL_CB_OK;
    const auto* a = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(reply));
    if (static_cast<int>(a->ifa_index) != d->index || a->ifa_family != d->family) return MNL_CB_OK;
    if (a->ifa_scope == RT_SCOPE_LINK && !d->link_scope_ok) return MNL_CB_OK;
    uint32_t flags = a->ifa_flags;
    std::string local, address;
    for (const nlattr* attr : Attributes(reply, sizeof(ifaddrmsg))) {
      switch (mnl_attr_get_type(attr)) {
        case IFA_LOCAL:
          local = AddressText(a->ifa_family, mnl_attr_get_payload(attr));
          break;
        case IFA_ADDRESS:
          address = AddressText(a->ifa_family, mnl_attr_get_payload(attr));
          break;
        case IFA_FLAGS:
          flags = mnl_attr_get_u32(attr);
          break;
        default:
          break;
      }
    }
    if ((flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) != 0) return MNL_CB_OK;
    // IPv4 point-to-point links put the peer in IFA_ADDRESS; IFA_LOCAL is ours when present.
    const std::string mine = local.empty() ? address : local;
    if (!mine.empty()) d->out.push_back(mine);
    return MNL_CB_OK;
  };
  absl::Status s = NetlinkExchange(nlh, cb, &data);
  if (!s.ok())
    return absl::Status(s.code(),
                        absl::StrCat("addresses of interface ", index, ": ", s.message()));
  return data.out;
}

absl::StatusOr<std::vector<std::string>> ResolveSources(const FloodSpec& spec) {
  const std::string who = absl::StrCat("floods.", spec.name, ".sources: ");
  const int family = spec.target.family();
  std::vector<std::string> asked = spec.sources;
  if (asked.empty() && !spec.source.empty()) asked.push_back(spec.source);
  if (!asked.empty()) {
    std::vector<std::string> out;
    for (const std::string& text : asked) {
      auto address = common::ParseHostAddress(text, 0);
      if (!address.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(who, address.status().message()));
      }
      if (address->family() != family) {
        return absl::InvalidArgumentError(
            absl::StrCat(who, text, " is not of the target's address family (target ",
                         spec.target.ToString(), ")"));
      }
      // A local route, not only an address on an interface: all of 127.0.0.0/8 is local.
      auto route = LookupRoute(*address);
      if (!route.ok())
        return absl::InvalidArgumentError(absl::StrCat(who, route.status().message()));
      if (route->type != RTN_LOCAL) {
        return absl::InvalidArgumentError(
            absl::StrCat(who, text, " is not a local address of this host (no local route)"));
      }
      const std::string canonical = address->HostString();
      if (std::find(out.begin(), out.end(), canonical) != out.end()) {
        return absl::InvalidArgumentError(absl::StrCat(who, text, " is listed twice"));
      }
      out.push_back(canonical);
    }
    return out;
  }
  auto route = LookupRoute(spec.target);
  if (!route.ok()) return absl::InvalidArgumentError(absl::StrCat(who, route.status().message()));
  bool link_local = false;
  if (family == AF_INET6) {
    link_local = IN6_IS_ADDR_LINKLOCAL(
        &reinterpret_cast<const sockaddr_in6*>(&spec.target.storage)->sin6_addr);
  }
  // A target that is this host's own non-loopback address is routed via lo, whose addresses
  // (127.0.0.1) are not what a user means: use the route's preferred source alone.
  const bool loopback_target =
      family == AF_INET
          ? (ntohl(reinterpret_cast<const sockaddr_in*>(&spec.target.storage)->sin_addr.s_addr) >>
             24) == 127
          : IN6_IS_ADDR_LOOPBACK(
                &reinterpret_cast<const sockaddr_in6*>(&spec.target.storage)->sin6_addr);
  if (route->type == RTN_LOCAL && !loopback_target) {
    return std::vector<std::string>{route->preferred_source.empty() ? spec.target.HostString()
                                                                    : route->preferred_source};
  }
  auto addresses = InterfaceAddresses(route->interface, family, link_local);
  if (!addresses.ok()) return addresses.status();
  std::vector<std::string> out;
  if (!route->preferred_source.empty()) out.push_back(route->preferred_source);
  for (const std::string& a : *addresses) {
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  if (out.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(who, "this host has no address of the target's family on the route to ",
                     spec.target.HostString(), " (interface ", route->interface, ")"));
  }
  return out;
}

absl::StatusOr<std::vector<SourcePorts>> PlanSourcePorts(const std::vector<std::string>& sources,
                                                         const std::vector<PortRange>& usable) {
  std::vector<SourcePorts> out;
  for (const std::string& s : sources) {
    auto address = common::ParseHostAddress(s, 0);
    if (!address.ok()) return address.status();
    out.push_back(SourcePorts{*address, usable, 1, 0});
  }
  return out;
}

FloodSpec ShareOf(const FloodSpec& spec, uint32_t parts, uint32_t index) {
  FloodSpec share = spec;
  if (parts <= 1) return share;
  const uint32_t stride = std::max<uint32_t>(spec.schedule_stride, 1);
  share.schedule_stride = stride * parts;
  share.schedule_offset = spec.schedule_offset + stride * index;
  share.concurrency = spec.concurrency / parts + (index < spec.concurrency % parts ? 1 : 0);
  if (spec.max_records > 0) {
    share.max_records = spec.max_records / parts + (index < spec.max_records % parts ? 1 : 0);
  }
  for (SourcePorts& p : share.source_ports) {
    const uint32_t s = std::max<uint32_t>(p.stride, 1);
    // p = offset + s*m takes the m with m % parts == index: p % (s*parts) == offset + s*index.
    p.offset = p.offset + s * index;
    p.stride = s * parts;
  }
  return share;
}

uint64_t AttemptsOfShare(uint64_t attempts, uint32_t stride, uint32_t offset) {
  stride = std::max<uint32_t>(stride, 1);
  if (attempts <= offset) return 0;
  return (attempts - offset - 1) / stride + 1;
}

}  // namespace synq::agent
