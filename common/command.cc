#include "common/command.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/unique_fd.h"

namespace synq::common {
namespace {

constexpr size_t kMaxOutput = 8192;

bool IsExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

}  // namespace

std::string FindProgram(const std::string& program) {
  if (program.empty()) return "";
  if (program.find('/') != std::string::npos) return IsExecutable(program) ? program : "";
  // The fixed directories first: an agent started by an init system may have a minimal PATH.
  std::vector<std::string> dirs = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (auto dir : absl::StrSplit(path, ':', absl::SkipEmpty())) dirs.emplace_back(dir);
  }
  for (const auto& dir : dirs) {
    std::string candidate = dir + "/" + program;
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

std::string JoinArgv(const std::vector<std::string>& argv) { return absl::StrJoin(argv, " "); }

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, int netns_fd) {
  if (argv.empty()) return absl::InvalidArgumentError("RunCommand: empty argv");
  const std::string path = FindProgram(argv[0]);
  if (path.empty()) return absl::NotFoundError("program '" + argv[0] + "' not found");

  // Everything the child touches is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed in a multi-threaded process.
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& arg : argv) cargv.push_back(const_cast<char*>(arg.c_str()));
  cargv.push_back(nullptr);

  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  // Reports a failed setns/exec to the parent; closed by a successful exec.
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);

  // The child must not inherit a caller's blocked signals (an agent thread may block some).
  sigset_t no_signals;
  sigemptyset(&no_signals);

  const pid_t pid = ::fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    int stage = 0;
    ::sigprocmask(SIG_SETMASK, &no_signals, nullptr);
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) {
      stage = 1;
    } else {
      const int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
      ::dup2(out_write.get(), STDOUT_FILENO);
      ::dup2(out_write.get(), STDERR_FILENO);
      ::execv(path.c_str(), cargv.data());
      stage = 2;
    }
    const int report[2] = {stage, errno};
    [[maybe_unused]] ssize_t n = ::write(err_write.get(), report, sizeof(report));
    ::_exit(127);
  }
  out_write.Reset();
  err_write.Reset();

  CommandResult result;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(out_read.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (result.output.size() < kMaxOutput) result.output.append(buf, static_cast<size_t>(n));
  }
  int report[2] = {0, 0};
  ssize_t got;
  do {
    got = ::read(err_read.get(), report, sizeof(report));
  } while (got < 0 && errno == EINTR);

  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "waitpid");
  }
  if (got == static_cast<ssize_t>(sizeof(report))) {
    return absl::ErrnoToStatus(report[1], (report[0] == 1 ? "setns for " : "exec ") + path);
  }
  if (WIFEXITED(wstatus)) {
    result.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    result.exit_code = 128 + WTERMSIG(wstatus);
  }
  while (!result.output.empty() && (result.output.back() == '\n' || result.output.back() == ' ')) {
    result.output.pop_back();
  }
  return result;
}

absl::StatusOr<std::string> RunChecked(const std::vector<std::string>& argv, int netns_fd) {
  absl::StatusOr<CommandResult> result = RunCommand(argv, netns_fd);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat("'", JoinArgv(argv), "' failed (exit ",
                                            result->exit_code, "): ", result->output));
  }
  return result->output;
}

}  // namespace synq::common
