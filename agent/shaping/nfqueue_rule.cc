#include "agent/shaping/nfqueue_rule.h"

#include <arpa/inet.h>
#include <net/if.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/command.h"
#include "common/status_macros.h"

namespace synq::agent {
using common::CommandResult;
using common::JoinArgv;
using common::RunCommand;

namespace {

// iptables exits 1 for "Bad rule (does a matching rule exist in that chain?)".
bool SaysNoSuchRule(const CommandResult& result) {
  return result.exit_code == 1 &&
         (result.output.find("does a matching rule exist") != std::string::npos ||
          result.output.find("No chain/target/match") != std::string::npos);
}

bool IsInterfaceName(const std::string& name) {
  if (name.empty() || name.size() >= IF_NAMESIZE || name[0] == '-') return false;
  for (char c : name) {
    if (c <= ' ' || c == '/' || c == ':' || c == 0x7f) return false;
  }
  return name != "." && name != "..";
}

bool IsPrefixOf(IpFamily family, const std::string& destination) {
  const size_t slash = destination.find('/');
  const std::string address = destination.substr(0, slash);
  in6_addr buf;
  const int af = family == IpFamily::kIpv4 ? AF_INET : AF_INET6;
  if (::inet_pton(af, address.c_str(), &buf) != 1) return false;
  if (slash == std::string::npos) return true;
  int prefix = -1;
  return absl::SimpleAtoi(destination.substr(slash + 1), &prefix) && prefix >= 0 &&
         prefix <= (family == IpFamily::kIpv4 ? 32 : 128);
}

}  // namespace

std::vector<IptablesRule> NfqueueRules(const std::string& interface, const std::string& destination,
                                       uint16_t queue_num) {
  const bool v6 = destination.find(':') != std::string::npos;
  std::vector<IptablesRule> rules;
  auto rule = [&](IpFamily family) {
    IptablesRule r;
    r.family = family;
    r.out_interface = interface;
    r.destination = destination;
    r.queue_num = queue_num;
    return r;
  };
  if (destination.empty() || !v6) rules.push_back(rule(IpFamily::kIpv4));
  if (destination.empty() || v6) rules.push_back(rule(IpFamily::kIpv6));
  return rules;
}

absl::Status ValidateIptablesRule(const IptablesRule& rule) {
  if (rule.table != "mangle") {
    return absl::InvalidArgumentError(
        absl::StrCat("table: '", rule.table, "' is not one synq uses (mangle)"));
  }
  if (rule.chain != "POSTROUTING") {
    return absl::InvalidArgumentError(
        absl::StrCat("chain: '", rule.chain, "' is not one synq uses (POSTROUTING)"));
  }
  if (!IsInterfaceName(rule.out_interface)) {
    return absl::InvalidArgumentError(
        absl::StrCat("out_interface: '", rule.out_interface, "' is not an interface name"));
  }
  if (!rule.destination.empty() && !IsPrefixOf(rule.family, rule.destination)) {
    return absl::InvalidArgumentError(
        absl::StrCat("destination: '", rule.destination, "' is not an ",
                     rule.family == IpFamily::kIpv4 ? "IPv4" : "IPv6", " address or prefix"));
  }
  return absl::OkStatus();
}

std::vector<std::string> IptablesArgv(const IptablesRule& rule, bool add) {
  std::vector<std::string> v = {rule.family == IpFamily::kIpv4 ? "iptables" : "ip6tables",
                                "-w",
                                "-t",
                                rule.table,
                                add ? "-A" : "-D",
                                rule.chain,
                                "-o",
                                rule.out_interface};
  if (!rule.destination.empty()) {
    v.push_back("-d");
    v.push_back(rule.destination);
  }
  for (std::string arg : {"-j", "NFQUEUE", "--queue-num"}) v.push_back(arg);
  v.push_back(std::to_string(rule.queue_num));
  if (rule.queue_bypass) v.push_back("--queue-bypass");
  return v;
}

absl::Status AddIptablesRule(const IptablesRule& rule, int netns_fd) {
  RETURN_IF_ERROR(ValidateIptablesRule(rule));
  const std::vector<std::string> argv = IptablesArgv(rule, /*add=*/true);
  ASSIGN_OR_RETURN(CommandResult result, RunCommand(argv, netns_fd));
  if (result.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat(JoinArgv(argv), " exited ", result.exit_code, ": ", result.output));
  }
  return absl::OkStatus();
}

absl::Status RemoveIptablesRule(const IptablesRule& rule, int netns_fd) {
  RETURN_IF_ERROR(ValidateIptablesRule(rule));
  const std::vector<std::string> argv = IptablesArgv(rule, /*add=*/false);
  ASSIGN_OR_RETURN(CommandResult result, RunCommand(argv, netns_fd));
  if (result.exit_code == 0) return absl::OkStatus();
  const std::string text =
      absl::StrCat(JoinArgv(argv), " exited ", result.exit_code, ": ", result.output);
  if (SaysNoSuchRule(result)) return absl::NotFoundError(text);
  return absl::InternalError(text);
}

}  // namespace synq::agent
