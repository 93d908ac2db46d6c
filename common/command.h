// Runs a helper program (ip, iptables) with an argv, never through a shell, optionally inside a
// given network namespace, and collects its exit code and combined output.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace synq::common {

struct CommandResult {
  int exit_code = -1;  // 128 + signal number when killed by a signal.
  std::string output;  // stdout and stderr, interleaved, trimmed to a few KiB.
};

// Runs argv[0] (searched in /usr/sbin, /sbin, /usr/bin, /bin, then PATH) with argv. When
// netns_fd >= 0 the child joins that network namespace before exec; otherwise it inherits the
// calling thread's. Fails only when the program could not be started; a non-zero exit is a
// result, not an error.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, int netns_fd = -1);

// The absolute path RunCommand would execute for `program`, or "" when it is nowhere to be found.
std::string FindProgram(const std::string& program);

// "iptables -t mangle -A ..." for log and error messages.
std::string JoinArgv(const std::vector<std::string>& argv);

// Runs and requires exit code 0; the error quotes the command line and its output.
absl::StatusOr<std::string> RunChecked(const std::vector<std::string>& argv, int netns_fd = -1);

}  // namespace synq::common
