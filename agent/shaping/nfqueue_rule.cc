#include "agent/shaping/nfqueue_rule.h"

#include "absl/strings/str_cat.h"
#include "common/command.h"
#include "common/status_macros.h"

namespace synq::agent {
using common::CommandResult;
using common::JoinArgv;
using common::RunCommand;

namespace {

IptablesRule MakeRule(const std::string& program, const std::string& interface,
                      const std::string& destination, uint16_t queue_num) {
  auto argv = [&](const char* op) {
    std::vector<std::string> v = {program, "-w",          "-t", "mangle",
                                  op,      "POSTROUTING", "-o", interface};
    if (!destination.empty()) {
      v.push_back("-d");
      v.push_back(destination);
    }
    for (std::string arg : {"-j", "NFQUEUE", "--queue-num"}) v.push_back(arg);
    v.push_back(std::to_string(queue_num));
    return v;
  };
  return {argv("-A"), argv("-D")};
}

// iptables exits 1 for "Bad rule (does a matching rule exist in that chain?)".
bool SaysNoSuchRule(const CommandResult& result) {
  return result.exit_code == 1 &&
         (result.output.find("does a matching rule exist") != std::string::npos ||
          result.output.find("No chain/target/match") != std::string::npos);
}

}  // namespace

std::vector<IptablesRule> NfqueueRules(const std::string& interface, const std::string& destination,
                                       uint16_t queue_num) {
  const bool v6 = destination.find(':') != std::string::npos;
  std::vector<IptablesRule> rules;
  if (destination.empty() || !v6) {
    rules.push_back(MakeRule("iptables", interface, destination, queue_num));
  }
  if (destination.empty() || v6) {
    rules.push_back(MakeRule("ip6tables", interface, destination, queue_num));
  }
  return rules;
}

absl::Status AddIptablesRule(const IptablesRule& rule, int netns_fd) {
  ASSIGN_OR_RETURN(CommandResult result, RunCommand(rule.add, netns_fd));
  if (result.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat(JoinArgv(rule.add), " exited ", result.exit_code, ": ", result.output));
  }
  return absl::OkStatus();
}

absl::Status RemoveIptablesRule(const IptablesRule& rule, int netns_fd) {
  ASSIGN_OR_RETURN(CommandResult result, RunCommand(rule.remove, netns_fd));
  if (result.exit_code == 0) return absl::OkStatus();
  const std::string text =
      absl::StrCat(JoinArgv(rule.remove), " exited ", result.exit_code, ": ", result.output);
  if (SaysNoSuchRule(result)) return absl::NotFoundError(text);
  return absl::InternalError(text);
}

}  // namespace synq::agent
