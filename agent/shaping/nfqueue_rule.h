// The firewall half of the NFQUEUE backend: the iptables/ip6tables rules that steer a host's
// egress into a queue. A rule is data (family, table, chain, match fields, queue); the argv to
// add or delete it is built from that data, so a journal never holds a command.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace synq::agent {

enum class IpFamily { kIpv4, kIpv6 };

struct IptablesRule {
  IpFamily family = IpFamily::kIpv4;  // iptables or ip6tables
  std::string table = "mangle";
  std::string chain = "POSTROUTING";
  std::string out_interface;  // -o
  std::string destination;    // -d, empty for all destinations
  uint16_t queue_num = 0;
  // --queue-bypass: while nobody is bound to the queue (the agent crashed), packets pass
  // unshaped instead of being dropped.
  bool queue_bypass = true;
  bool operator==(const IptablesRule&) const = default;
};

// `-t mangle -{A,D} POSTROUTING -o interface [-d destination] -j NFQUEUE --queue-num N
// --queue-bypass`, for iptables when destination is IPv4, ip6tables when IPv6, both when it is
// empty (all egress).
std::vector<IptablesRule> NfqueueRules(const std::string& interface, const std::string& destination,
                                       uint16_t queue_num);

// Checks every field is one this agent writes (table mangle, chain POSTROUTING, an interface
// name, an address or prefix of the rule's family): a journal read from disk is untrusted input,
// and these values end up in an argv. The error names the field.
absl::Status ValidateIptablesRule(const IptablesRule& rule);

// The argv that adds (`add`) or deletes the rule.
std::vector<std::string> IptablesArgv(const IptablesRule& rule, bool add);

// Adds the rule (in netns_fd's namespace when >= 0, else the calling thread's).
absl::Status AddIptablesRule(const IptablesRule& rule, int netns_fd = -1);
// Deletes the rule; NotFound when the rule is not there (already removed).
absl::Status RemoveIptablesRule(const IptablesRule& rule, int netns_fd = -1);

}  // namespace synq::agent
