// Where a flood's connections come from: which local addresses (the route to the target, or the
// spec's `sources`), which ports of each (ip_local_port_range minus ip_local_reserved_ports), and
// how a flood is split into shares over rings and worker processes without overlapping ports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/flood/flood_spec.h"
#include "common/net_address.h"

namespace synq::agent {

// The kernel's port settings in this network namespace, as read from /proc/sys.
struct PortFacts {
  PortRange local_range;            // net.ipv4.ip_local_port_range
  std::vector<PortRange> reserved;  // net.ipv4.ip_local_reserved_ports
  int tw_reuse = 2;                 // net.ipv4.tcp_tw_reuse
};

// Parses a port list as the kernel prints ip_local_reserved_ports: "" or "1000-1010,2000".
// InvalidArgument naming `what` and the bad item.
absl::StatusOr<std::vector<PortRange>> ParsePortList(absl::string_view text,
                                                     absl::string_view what);

// Reads ip_local_port_range, ip_local_reserved_ports and tcp_tw_reuse under `proc_sys_dir`.
absl::StatusOr<PortFacts> ReadPortFacts(const std::string& proc_sys_dir);

// The ports of `range` that are not in `reserved`, as sorted disjoint ranges.
std::vector<PortRange> UsablePorts(PortRange range, const std::vector<PortRange>& reserved);

// How many ports `ranges` hold; and how many of them `ports` may take (port % stride == offset).
uint64_t CountPorts(const std::vector<PortRange>& ranges);
uint64_t CountPorts(const SourcePorts& ports);

// What the routing table says about a destination (RTM_GETROUTE).
struct RouteFacts {
  int type = 0;                  // RTN_UNICAST, RTN_LOCAL, ...
  int interface = 0;             // output interface index
  std::string preferred_source;  // RTA_PREFSRC, "" if none
};
absl::StatusOr<RouteFacts> LookupRoute(const common::SocketAddress& destination);

// The addresses of `family` on interface `index` (RTM_GETADDR), skipping tentative and
// DAD-failed ones, and link-scope ones unless `link_scope_ok`.
absl::StatusOr<std::vector<std::string>> InterfaceAddresses(int index, int family,
                                                            bool link_scope_ok);

// The local addresses a flood connects from: `spec.sources`, else `spec.source`, else every
// address on the route's output interface (preferred source first). Explicit ones must be local
// addresses of this host (a local route, so 127.0.0.2 counts) of the target's family.
// InvalidArgument names the flood, the address and the reason.
absl::StatusOr<std::vector<std::string>> ResolveSources(const FloodSpec& spec);

// One SourcePorts per address, each with all of `usable`, stride 1.
absl::StatusOr<std::vector<SourcePorts>> PlanSourcePorts(const std::vector<std::string>& sources,
                                                         const std::vector<PortRange>& usable);

// Share `index` of `parts` of `spec`: schedule stride/offset, concurrency (ceil/floor so the
// shares add up), max_records and every address's ports (port % (stride*parts) ==
// offset + stride*index) split so the shares are disjoint and cover the whole.
FloodSpec ShareOf(const FloodSpec& spec, uint32_t parts, uint32_t index);

// Attempts of the whole flood that fall to a share (k < attempts, k % stride == offset).
uint64_t AttemptsOfShare(uint64_t attempts, uint32_t stride, uint32_t offset);

}  // namespace synq::agent
