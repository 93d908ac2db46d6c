// The one way synq runs another program: Spawn starts it (argv, never a shell) with the
// descriptors, process group and network namespace asked for; RunCommand runs a helper (ip,
// iptables) to its end and collects its exit code and combined output.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace synq::common {

// Opens /dev/null on a child descriptor (SpawnFd::parent_fd).
inline constexpr int kDevNull = -2;

struct SpawnFd {
  int child_fd = -1;   // the descriptor number in the child
  int parent_fd = -1;  // dup2'ed onto it (may be close-on-exec), or kDevNull
};

struct SpawnOptions {
  // Descriptors 0, 1, 2 not listed are inherited; other descriptors follow their close-on-exec
  // flag unless close_from closes them.
  std::vector<SpawnFd> fds;
  // When >= 0, every descriptor >= close_from is closed in the child (after `fds` are set up).
  int close_from = -1;
  enum class Group { kInherit, kNewProcessGroup, kNewSession };
  Group group = Group::kInherit;
  // The child starts with an empty signal mask (an agent thread blocks SIGTERM for sigwait).
  bool clear_signal_mask = true;
  // When >= 0, the child joins this network namespace before exec. setns is no posix_spawn
  // action, so this child is forked and does only async-signal-safe calls before exec.
  int netns_fd = -1;
};

// Starts argv[0] (resolved by FindProgram) with argv; the caller reaps the pid (waitpid).
// posix_spawn unless options.netns_fd >= 0. Fails when the program could not be started
// (not found, exec failed, setns failed), naming the program.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

struct CommandResult {
  int exit_code = -1;  // 128 + signal number when killed by a signal.
  std::string output;  // stdout and stderr, interleaved, trimmed to a few KiB.
};

// Runs argv to its end with stdin on /dev/null. When netns_fd >= 0 the child joins that network
// namespace before exec; otherwise it inherits the calling thread's. Fails only when the program
// could not be started; a non-zero exit is a result, not an error.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, int netns_fd = -1);

// The absolute path RunCommand would execute for `program` (searched in /usr/sbin, /sbin,
// /usr/bin, /bin, then PATH), or "" when it is nowhere to be found.
std::string FindProgram(const std::string& program);

// "iptables -t mangle -A ..." for log and error messages.
std::string JoinArgv(const std::vector<std::string>& argv);

// Runs and requires exit code 0; the error quotes the command line and its output.
absl::StatusOr<std::string> RunChecked(const std::vector<std::string>& argv, int netns_fd = -1);

}  // namespace synq::common
