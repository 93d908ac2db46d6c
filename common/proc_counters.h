// Kernel SNMP counters from /proc/net/netstat and /proc/net/snmp, named as nstat names them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace synq::common {

// nstat name ("TcpExtListenOverflows", "TcpPassiveOpens") -> value.
using Counters = std::map<std::string, int64_t>;

// Parses the "Prefix: name name ..." / "Prefix: value value ..." line pairs of
// /proc/net/netstat or /proc/net/snmp. Names become prefix+name ("TcpExt" + "ListenOverflows").
// A header without its value line, or a count mismatch, is an error naming the prefix.
absl::StatusOr<Counters> ParseProcNetCounters(std::string_view text);

// Reads and merges /proc/net/netstat and /proc/net/snmp of the calling thread's network
// namespace (root_dir lets tests point at a fixture directory holding net/netstat, net/snmp).
absl::StatusOr<Counters> ReadKernelCounters(const std::string& proc_dir = "/proc");

// after - before for every name in either (missing counts as 0).
Counters CounterDeltas(const Counters& before, const Counters& after);

// Only the entries whose value is not zero.
Counters NonZero(const Counters& counters);

}  // namespace synq::common
