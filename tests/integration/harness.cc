#include "tests/integration/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace synq::testing {
namespace fs = std::filesystem;

std::string Binary(const std::string& relative) {
  return absl::StrCat(SYNQ_BINARY_DIR, "/", relative);
}
std::string Source(const std::string& relative) {
  return absl::StrCat(SYNQ_SOURCE_DIR, "/", relative);
}

TempDir::TempDir() {
  std::string tmpl = "/tmp/synq-test-XXXXXX";
  path_ = mkdtemp(tmpl.data());
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}
std::string TempDir::Write(const std::string& name, const std::string& text) const {
  const std::string p = path_ + "/" + name;
  std::ofstream(p) << text;
  return p;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    setpgid(0, 0);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int WaitFor(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

ProcessResult RunProcess(const std::vector<std::string>& argv, std::chrono::seconds limit) {
  TempDir dir;
  const std::string log = dir.path() + "/out";
  const pid_t pid = Spawn(argv, log);
  ProcessResult result;
  result.exit_code = WaitFor(pid, limit);
  if (result.exit_code == -1) {
    kill(pid, SIGKILL);
    WaitFor(pid, std::chrono::seconds(5));
  }
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  result.output = ss.str();
  return result;
}

SynqRun RunSynq(const std::string& scenario_file, const std::string& out_dir,
                const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {Binary("controller/synq"), "run", scenario_file, "--out",
                                   out_dir};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ProcessResult p = RunProcess(argv);
  SynqRun out;
  out.exit_code = p.exit_code;
  out.output = p.output;
  std::ifstream in(out_dir + "/result.json");
  if (in) out.result = nlohmann::json::parse(in, nullptr, false);
  return out;
}

TestNetns::TestNetns(const std::string& name) : name_(absl::StrCat("synq-t", getpid(), "-", name)) {
  RunProcess({"/usr/bin/env", "ip", "netns", "del", name_});
  RunProcess({"/usr/bin/env", "ip", "netns", "add", name_});
  RunProcess({"/usr/bin/env", "ip", "-n", name_, "link", "set", "lo", "up"});
}
TestNetns::~TestNetns() { RunProcess({"/usr/bin/env", "ip", "netns", "del", name_}); }

long TestNetns::Sysctl(const std::string& key) const {
  ProcessResult p = RunProcess({"/usr/bin/env", "ip", "netns", "exec", name_, "sysctl", "-n", key});
  return std::strtol(p.output.c_str(), nullptr, 10);
}

std::string TestNetns::Exec(const std::vector<std::string>& argv) const {
  std::vector<std::string> full = {"/usr/bin/env", "ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunProcess(full).output;
}

std::vector<std::string> SynqNamespaces() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/var/run/netns", ec)) {
    const std::string name = e.path().filename();
    if (name.rfind("synq-", 0) == 0) out.push_back(name);
  }
  return out;
}

bool IsRoot() { return geteuid() == 0; }

}  // namespace synq::testing
