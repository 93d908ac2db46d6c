// The firewall half of the NFQUEUE backend: the iptables/ip6tables rules that steer a host's
// egress into a queue, as exact argv pairs (add, delete) so a journal can replay the delete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace synq::agent {

struct IptablesRule {
  std::vector<std::string> add;     // iptables -w -t mangle -A POSTROUTING ...
  std::vector<std::string> remove;  // the same with -D
  bool operator==(const IptablesRule&) const = default;
};

// `-t mangle -A POSTROUTING -o interface [-d destination] -j NFQUEUE --queue-num N`, for
// iptables when destination is IPv4, ip6tables when IPv6, both when it is empty (all egress).
// No --queue-bypass: while the rule exists, packets nobody reads are dropped, never let through
// unshaped.
std::vector<IptablesRule> NfqueueRules(const std::string& interface, const std::string& destination,
                                       uint16_t queue_num);

// Runs rule.add (in netns_fd's namespace when >= 0, else the calling thread's).
absl::Status AddIptablesRule(const IptablesRule& rule, int netns_fd = -1);
// Runs rule.remove; NotFound when the rule is not there (already removed).
absl::Status RemoveIptablesRule(const IptablesRule& rule, int netns_fd = -1);

}  // namespace synq::agent
