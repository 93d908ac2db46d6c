#include "tests/integration/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

ProcessResult TestNetns::Run(const std::vector<std::string>& argv) const {
  std::vector<std::string> full = {"/usr/bin/env", "ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunProcess(full, std::chrono::seconds(60));
}

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

bool PollUntil(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

std::string EnsureBlackhole() {
  ProcessResult routes = RunProcess({"/usr/bin/env", "ip", "route", "show", "198.18.0.0/15"});
  if (absl::StrContains(routes.output, "blackhole")) return "";
  ProcessResult add =
      RunProcess({"/usr/bin/env", "ip", "route", "add", "blackhole", "198.18.0.0/15"});
  return add.exit_code == 0 ? "" : absl::StrCat("ip route add blackhole: ", add.output);
}

namespace {

std::vector<std::string> NetnsExec(const std::string& netns) {
  return {"/usr/bin/env", "ip", "netns", "exec", netns};
}

ProcessResult InNetns(const std::string& netns, std::vector<std::string> argv) {
  std::vector<std::string> full = NetnsExec(netns);
  full.insert(full.end(), argv.begin(), argv.end());
  return RunProcess(full, std::chrono::seconds(30));
}

// iptables-save without what does not describe a rule: comments, COMMIT, table headers, byte
// counters, and built-in chains with an ACCEPT policy (the form an empty table takes).
std::string IptablesRules(const std::string& save) {
  std::vector<std::string> kept;
  std::string table;
  for (absl::string_view line : absl::StrSplit(save, '\n')) {
    if (line.empty() || absl::StartsWith(line, "#") || line == "COMMIT") continue;
    if (absl::StartsWith(line, "*")) {
      table = std::string(line.substr(1));
      continue;
    }
    std::string text(line);
    // ":INPUT ACCEPT [12:3456]" -> ":INPUT ACCEPT"
    if (const size_t bracket = text.find(" ["); bracket != std::string::npos) {
      text.resize(bracket);
    }
    if (absl::StartsWith(text, ":") && absl::EndsWith(text, " ACCEPT")) continue;
    kept.push_back(absl::StrCat(table, " ", text));
  }
  return absl::StrJoin(kept, "\n");
}

// `nft list ruleset` without the table and chain skeletons (kept: rules, non-accept policies).
std::string NftRules(const std::string& ruleset) {
  std::vector<std::string> kept;
  std::string where;
  for (absl::string_view raw : absl::StrSplit(ruleset, '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line == "}") continue;
    if (absl::StartsWith(line, "table ") || absl::StartsWith(line, "chain ")) {
      if (absl::StartsWith(line, "table ")) where.clear();
      where = absl::StrCat(where, line.substr(0, line.size() - 2), " ");
      continue;
    }
    if (absl::StartsWith(line, "type ") && absl::StrContains(line, "policy accept;")) continue;
    kept.push_back(absl::StrCat(where, line));
  }
  return absl::StrJoin(kept, "\n");
}

bool HaveNft() { return access("/usr/sbin/nft", X_OK) == 0 || access("/usr/bin/nft", X_OK) == 0; }

}  // namespace

NetnsState ReadNetnsState(const std::string& netns) {
  NetnsState state;
  // /proc/sys/net/{core,ipv4} as a process inside the namespace sees them.
  ProcessResult sysctls = InNetns(netns, {"sysctl", "-a"});
  for (absl::string_view line : absl::StrSplit(sysctls.output, '\n')) {
    if (!absl::StartsWith(line, "net.core.") && !absl::StartsWith(line, "net.ipv4.")) continue;
    const size_t eq = line.find(" = ");
    if (eq == absl::string_view::npos) continue;
    state.sysctls[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 3));
  }
  state.qdiscs = InNetns(netns, {"tc", "qdisc", "show"}).output;
  state.iptables =
      absl::StrCat("ipv4:\n", IptablesRules(InNetns(netns, {"iptables-save"}).output), "\nipv6:\n",
                   IptablesRules(InNetns(netns, {"ip6tables-save"}).output));
  if (HaveNft()) state.nftables = NftRules(InNetns(netns, {"nft", "list", "ruleset"}).output);
  return state;
}

std::vector<std::string> Differences(const NetnsState& before, const NetnsState& after) {
  std::vector<std::string> out;
  for (const auto& [key, value] : before.sysctls) {
    auto it = after.sysctls.find(key);
    if (it == after.sysctls.end()) {
      out.push_back(absl::StrCat("sysctl ", key, ": ", value, " -> (gone)"));
    } else if (it->second != value) {
      out.push_back(absl::StrCat("sysctl ", key, ": ", value, " -> ", it->second));
    }
  }
  for (const auto& [key, value] : after.sysctls) {
    if (!before.sysctls.contains(key)) {
      out.push_back(absl::StrCat("sysctl ", key, ": (absent) -> ", value));
    }
  }
  if (before.qdiscs != after.qdiscs) {
    out.push_back(absl::StrCat("qdiscs:\n", before.qdiscs, "->\n", after.qdiscs));
  }
  if (before.iptables != after.iptables) {
    out.push_back(absl::StrCat("iptables rules:\n", before.iptables, "\n->\n", after.iptables));
  }
  if (before.nftables != after.nftables) {
    out.push_back(absl::StrCat("nft rules:\n", before.nftables, "\n->\n", after.nftables));
  }
  return out;
}

std::set<std::string> SynqTraceInstances() {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/kernel/tracing/instances", ec)) {
    const std::string name = e.path().filename();
    if (name.rfind("synq-", 0) == 0) out.insert(name);
  }
  return out;
}

pid_t TraceInstanceOwner(const std::string& instance) {
  std::vector<std::string> parts = absl::StrSplit(instance, '-');
  pid_t pid = -1;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &pid)) return -1;
  return pid;
}

std::vector<pid_t> PidsWithCommandLine(const std::string& text) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &pid)) continue;
    std::ifstream in(e.path() / "cmdline");
    std::stringstream ss;
    ss << in.rdbuf();
    if (absl::StrContains(ss.str(), text)) out.push_back(pid);
  }
  return out;
}

bool AgentProcess::Alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGCONT);
    Signal(SIGKILL, std::chrono::seconds(5));
  }
}

std::string AgentProcess::Start(const std::string& netns, const std::string& listen,
                                const std::string& state_dir, const std::string& log,
                                const std::vector<std::string>& extra_args) {
  const std::string port_file = log + ".addr";
  std::error_code ec;
  fs::remove(port_file, ec);
  std::vector<std::string> argv = {Binary("agent/synq-agent"),
                                   "--listen",
                                   listen,
                                   "--state-dir",
                                   state_dir,
                                   "--port-file",
                                   port_file};
  if (!netns.empty()) argv.insert(argv.end(), {"--netns", netns});
  const bool loopback = absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "127.") ||
                        absl::StartsWith(listen, "[::1]");
  // Agents that refuse a non-loopback address without TLS take --insecure (issue 8 item 1).
  if (!loopback &&
      absl::StrContains(RunProcess({Binary("agent/synq-agent"), "--help"}).output, "--insecure")) {
    argv.push_back("--insecure");
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = Spawn(argv, log);
  return WaitForPortFile(port_file);
}

std::string WaitForPortFile(const std::string& path, std::chrono::milliseconds limit) {
  std::string address;
  PollUntil(
      [&] {
        std::ifstream in(path);
        return static_cast<bool>(std::getline(in, address)) && !address.empty();
      },
      limit);
  return address;
}

int AgentProcess::Signal(int sig, std::chrono::milliseconds limit) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  const int code = WaitFor(pid_, limit);
  if (code != -1) pid_ = -1;
  return code;
}

void AgentProcess::Freeze() const {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}
void AgentProcess::Thaw() const {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

TmpfsMount::TmpfsMount(const std::string& dir, size_t bytes) : dir_(dir) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  const std::string options = absl::StrCat("size=", bytes, ",mode=0700");
  if (mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
    error_ = absl::StrCat("mount tmpfs on ", dir_, ": ", std::strerror(errno));
  }
}

TmpfsMount::~TmpfsMount() {
  if (error_.empty()) umount2(dir_.c_str(), MNT_DETACH);
}

size_t TmpfsMount::Fill() const {
  const int fd = open((dir_ + "/fill").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  const std::string block(4096, 'x');
  size_t total = 0;
  while (true) {
    const ssize_t n = write(fd, block.data(), block.size());
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  close(fd);
  return total;
}

std::string TmpfsMount::SetReadOnly(bool read_only) const {
  const unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
  if (mount("tmpfs", dir_.c_str(), "tmpfs", flags, nullptr) != 0) {
    return absl::StrCat("remount ", dir_, read_only ? " ro: " : " rw: ", std::strerror(errno));
  }
  return "";
}

}  // namespace synq::testing
