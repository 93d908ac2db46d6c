#include "common/command.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/unique_fd.h"

extern char** environ;

namespace synq::common {
namespace {

constexpr size_t kMaxOutput = 8192;

bool IsExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Parent descriptors at or below the highest child descriptor could be overwritten by an
// earlier dup2 (or be one already, which dup2 would leave close-on-exec): move them above.
absl::Status LiftParentFds(std::vector<SpawnFd>& fds, std::vector<UniqueFd>& keep) {
  int highest = 2;
  for (const SpawnFd& f : fds) highest = std::max(highest, f.child_fd);
  for (SpawnFd& f : fds) {
    if (f.parent_fd == kDevNull) {
      UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
      if (!null) return absl::ErrnoToStatus(errno, "open /dev/null");
      const int lifted = ::fcntl(null.get(), F_DUPFD_CLOEXEC, highest + 1);
      if (lifted < 0) return absl::ErrnoToStatus(errno, "fcntl(F_DUPFD_CLOEXEC)");
      f.parent_fd = lifted;
      keep.emplace_back(lifted);
    } else if (f.parent_fd <= highest) {
      const int lifted = ::fcntl(f.parent_fd, F_DUPFD_CLOEXEC, highest + 1);
      if (lifted < 0) return absl::ErrnoToStatus(errno, "fcntl(F_DUPFD_CLOEXEC)");
      f.parent_fd = lifted;
      keep.emplace_back(lifted);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<pid_t> SpawnPosix(const std::string& path, char* const argv[],
                                 const std::vector<SpawnFd>& fds, const SpawnOptions& options) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  auto destroy = absl::MakeCleanup([&] {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  });
  for (const SpawnFd& f : fds) posix_spawn_file_actions_adddup2(&actions, f.parent_fd, f.child_fd);
  if (options.close_from >= 0)
    posix_spawn_file_actions_addclosefrom_np(&actions, options.close_from);
  short flags = 0;
  if (options.clear_signal_mask) {
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    flags |= POSIX_SPAWN_SETSIGMASK;
  }
  if (options.group == SpawnOptions::Group::kNewSession) flags |= POSIX_SPAWN_SETSID;
  if (options.group == SpawnOptions::Group::kNewProcessGroup) {
    posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  const int err = ::posix_spawn(&pid, path.c_str(), &actions, &attr, argv, environ);
  if (err != 0) return absl::ErrnoToStatus(err, absl::StrCat("posix_spawn ", path));
  return pid;
}

// setns must happen in the child before exec: fork, and between fork and exec only
// async-signal-safe calls (this process has threads).
absl::StatusOr<pid_t> SpawnForked(const std::string& path, char* const argv[],
                                  const std::vector<SpawnFd>& fds, const SpawnOptions& options) {
  // Reports a failed step to the parent; closed by a successful exec.
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  sigset_t none;
  sigemptyset(&none);

  const pid_t pid = ::fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    int stage = 0;
    if (options.clear_signal_mask) ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::setns(options.netns_fd, CLONE_NEWNET) != 0) {
      stage = 1;
    } else if (options.group == SpawnOptions::Group::kNewSession && ::setsid() < 0) {
      stage = 2;
    } else if (options.group == SpawnOptions::Group::kNewProcessGroup && ::setpgid(0, 0) != 0) {
      stage = 2;
    } else {
      for (const SpawnFd& f : fds) {
        if (::dup2(f.parent_fd, f.child_fd) < 0) stage = 3;
      }
      if (stage == 0 && options.close_from >= 0) {
        ::syscall(SYS_close_range, static_cast<unsigned>(options.close_from), ~0u, 0u);
      }
      if (stage == 0) {
        ::execv(path.c_str(), argv);
        stage = 4;
      }
    }
    const int report[2] = {stage, errno};
    [[maybe_unused]] ssize_t n = ::write(err_write.get(), report, sizeof(report));
    ::_exit(127);
  }
  err_write.Reset();
  int report[2] = {0, 0};
  ssize_t got;
  do {
    got = ::read(err_read.get(), report, sizeof(report));
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof(report))) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    static constexpr const char* kStage[] = {"", "setns for ", "new process group for ",
                                             "dup2 for ", "exec "};
    return absl::ErrnoToStatus(report[1], absl::StrCat(kStage[report[0]], path));
  }
  return pid;
}

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

absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("Spawn: empty argv");
  const std::string path = FindProgram(argv[0]);
  if (path.empty()) return absl::NotFoundError("program '" + argv[0] + "' not found");
  // Everything the child touches is prepared here, before posix_spawn or fork.
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& arg : argv) cargv.push_back(const_cast<char*>(arg.c_str()));
  cargv.push_back(nullptr);
  std::vector<SpawnFd> fds = options.fds;
  std::vector<UniqueFd> lifted;
  if (absl::Status s = LiftParentFds(fds, lifted); !s.ok()) return s;
  return options.netns_fd >= 0 ? SpawnForked(path, cargv.data(), fds, options)
                               : SpawnPosix(path, cargv.data(), fds, options);
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, int netns_fd) {
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  SpawnOptions options;
  options.fds = {
      {STDIN_FILENO, kDevNull}, {STDOUT_FILENO, out_write.get()}, {STDERR_FILENO, out_write.get()}};
  options.netns_fd = netns_fd;
  absl::StatusOr<pid_t> pid = Spawn(argv, options);
  if (!pid.ok()) return pid.status();
  out_write.Reset();

  CommandResult result;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(out_read.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (result.output.size() < kMaxOutput) result.output.append(buf, static_cast<size_t>(n));
  }
  int wstatus = 0;
  while (::waitpid(*pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "waitpid");
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
