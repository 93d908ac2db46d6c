#include "controller/lab.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/atomic_file.h"
#include "common/command.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace synq::controller {
namespace fs = std::filesystem;
using common::RunChecked;

namespace {

constexpr char kBenchmarkNet[] = "198.18.0.0/15";
constexpr char kNetnsDir[] = "/var/run/netns";

absl::Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunChecked(argv).status();
}

bool ProcessAlive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

// Waits for a child (or any process) to exit, up to `timeout`.
bool WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD && !ProcessAlive(pid))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

absl::Status EnsureBenchmarkBlackhole() {
  ASSIGN_OR_RETURN(std::string routes, RunChecked({"ip", "route", "show", kBenchmarkNet}));
  if (absl::StrContains(routes, "blackhole")) return absl::OkStatus();
  if (!routes.empty()) {
    spdlog::warn("root namespace routes {} as: {}; adding a blackhole route in front",
                 kBenchmarkNet, routes);
  }
  return Ip({"route", "add", "blackhole", kBenchmarkNet});
}

void RemoveStaleNamespaces() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kNetnsDir, ec)) {
    const std::string name = entry.path().filename();
    std::vector<std::string> parts = absl::StrSplit(name, '-');
    pid_t pid = 0;
    if (parts.size() < 3 || parts[0] != "synq" || !absl::SimpleAtoi(parts[1], &pid)) continue;
    if (ProcessAlive(pid)) continue;
    spdlog::warn("deleting network namespace {} left by synq process {}", name, pid);
    (void)Ip({"netns", "del", name});
  }
}

void RemoveStaleRunDirs() {
  // Root runs keep their hosts' state in /run/synq/run-<pid>, others in /tmp/synq-<uid>-<pid>.
  const std::string uid_prefix = absl::StrCat("synq-", getuid(), "-");
  for (const auto& [dir, prefix] : {std::pair<std::string, std::string>{"/run/synq", "run-"},
                                    std::pair<std::string, std::string>{"/tmp", uid_prefix}}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename();
      pid_t pid = 0;
      if (!absl::StartsWith(name, prefix) ||
          !absl::SimpleAtoi(absl::string_view(name).substr(prefix.size()), &pid) || pid <= 0 ||
          ProcessAlive(pid) || !entry.is_directory(ec) || entry.is_symlink(ec)) {
        continue;
      }
      spdlog::warn("removing {} left by synq process {}", entry.path().string(), pid);
      fs::remove_all(entry.path(), ec);
    }
  }
}

std::string FindAgentBinary() {
  if (const char* env = std::getenv("SYNQ_AGENT"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  for (const fs::path& candidate : {self.parent_path() / "synq-agent",
                                    self.parent_path().parent_path() / "agent" / "synq-agent"}) {
    if (fs::exists(candidate, ec)) return candidate;
  }
  return "synq-agent";
}

absl::StatusOr<std::unique_ptr<Lab>> Lab::Create(const LabOptions& options) {
  std::unique_ptr<Lab> lab(new Lab(options));
  if (absl::Status s = lab->Build(); !s.ok()) {
    (void)lab->Destroy();
    return s;
  }
  return lab;
}

Lab::~Lab() {
  if (!options_.persistent) (void)Destroy();
  if (reaper_pipe_ >= 0) close(reaper_pipe_);
}

const LabHost* Lab::Find(const std::string& name) const {
  for (const auto& h : hosts_) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

absl::Status Lab::Build() {
  std::error_code ec;
  fs::create_directories(options_.state_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(options_.state_dir, ": ", ec.message()));
  if (options_.hosts.size() > 250) {
    return absl::InvalidArgumentError("hosts: at most 250 embedded hosts per run");
  }

  if (options_.isolated) {
    RETURN_IF_ERROR(EnsureBenchmarkBlackhole());
    if (!options_.persistent) {
      // A reaper outlives us: when our end of its pipe closes (exit, crash, SIGKILL) it deletes
      // this run's namespaces, then this run's state dir (/run/synq/run-<pid>). The agents in
      // those namespaces restore on their own (--parent-death); what they change outside a
      // namespace (trace instances) is swept by pid at the next agent start.
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
      common::UniqueFd read_end(fds[0]);
      reaper_pipe_ = fds[1];
      const std::string script = absl::StrCat(
          "trap '' INT TERM HUP; cat >/dev/null; for n in $(ls ", kNetnsDir,
          " 2>/dev/null | grep '^", options_.prefix, "-'); do ip netns del \"$n\"; done; rm -rf '",
          options_.state_dir, "'");
      common::SpawnOptions reaper;
      reaper.group = common::SpawnOptions::Group::kNewSession;
      reaper.fds = {{STDIN_FILENO, read_end.get()},
                    {STDOUT_FILENO, common::kDevNull},
                    {STDERR_FILENO, common::kDevNull}};
      RETURN_IF_ERROR(common::Spawn({"/bin/sh", "-c", script}, reaper).status());
    }
    const std::string hub = options_.prefix + "-hub";
    RETURN_IF_ERROR(Ip({"netns", "add", hub}));
    namespaces_.push_back(hub);
    RETURN_IF_ERROR(Ip({"-n", hub, "link", "set", "lo", "up"}));
    RETURN_IF_ERROR(Ip({"-n", hub, "link", "add", "br0", "type", "bridge"}));
    RETURN_IF_ERROR(Ip({"-n", hub, "link", "set", "br0", "up"}));
    int index = 0;
    for (const auto& name : options_.hosts) {
      ++index;
      LabHost host;
      host.name = name;
      host.netns = absl::StrCat(options_.prefix, "-", name);
      host.address = absl::StrCat("198.18.0.", index + 1);
      host.interface = "eth0";
      RETURN_IF_ERROR(Ip({"netns", "add", host.netns}));
      namespaces_.push_back(host.netns);
      const std::string port = absl::StrCat("p", index);
      RETURN_IF_ERROR(Ip({"-n", host.netns, "link", "set", "lo", "up"}));
      RETURN_IF_ERROR(Ip({"-n", host.netns, "link", "add", "eth0", "type", "veth", "peer", "name",
                          port, "netns", hub}));
      RETURN_IF_ERROR(Ip({"-n", hub, "link", "set", port, "master", "br0"}));
      RETURN_IF_ERROR(Ip({"-n", hub, "link", "set", port, "up"}));
      RETURN_IF_ERROR(Ip({"-n", host.netns, "addr", "add", host.address + "/24", "dev", "eth0"}));
      RETURN_IF_ERROR(Ip({"-n", host.netns, "link", "set", "eth0", "up"}));
      RETURN_IF_ERROR(AddExtraAddresses(host, index));
      hosts_.push_back(host);
    }
  } else {
    for (const auto& name : options_.hosts) {
      if (auto it = options_.addresses.find(name);
          it != options_.addresses.end() && it->second > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("hosts.", name, ".addresses: ", it->second,
                         " addresses need network namespaces (run synq as root)"));
      }
      LabHost host;
      host.name = name;
      host.address = "127.0.0.1";
      host.addresses = {host.address};
      hosts_.push_back(host);
    }
  }
  for (auto& host : hosts_) RETURN_IF_ERROR(StartAgent(host));
  return absl::OkStatus();
}

absl::Status Lab::AddExtraAddresses(LabHost& host, int index) {
  host.addresses = {host.address};
  // Every 198.18.0.0/15 address is on-link (ARP on the bridge), so replies to a client's extra
  // addresses leave through eth0 like those to its first one.
  RETURN_IF_ERROR(Ip({"-n", host.netns, "route", "add", kBenchmarkNet, "dev", "eth0"}));
  auto it = options_.addresses.find(host.name);
  const int count = it == options_.addresses.end() ? 1 : it->second;
  if (count > 254) {
    return absl::InvalidArgumentError(
        absl::StrCat("hosts.", host.name, ".addresses: at most 254, got ", count));
  }
  for (int k = 1; k < count; ++k) {
    const std::string extra = absl::StrCat("198.18.", index, ".", k + 1);
    RETURN_IF_ERROR(Ip({"-n", host.netns, "addr", "add", extra + "/32", "dev", "eth0"}));
    host.addresses.push_back(extra);
  }
  return absl::OkStatus();
}

absl::Status Lab::StartAgent(LabHost& host) {
  const std::string dir = absl::StrCat(options_.state_dir, "/", host.name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string socket = absl::StrCat(dir, "/agent.sock");
  const std::string ready = absl::StrCat(dir, "/agent.addr");
  const std::string log = absl::StrCat(dir, "/agent.log");
  fs::remove(socket, ec);
  fs::remove(ready, ec);
  host.agent_address = "unix:" + socket;

  std::vector<std::string> argv = {
      options_.agent_binary, "--listen", host.agent_address, "--state-dir", dir,
      "--port-file",         ready,      "--log-level",      "info"};
  if (!host.netns.empty()) {
    argv.push_back("--netns");
    argv.push_back(host.netns);
  }
  if (!options_.persistent) {
    // Our pid, not "pid 1 means orphaned": synq may be pid 1 (a container's entrypoint).
    argv.insert(argv.end(), {"--parent-death", "--parent-pid", absl::StrCat(getpid())});
  }
  common::UniqueFd log_fd(open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!log_fd) return absl::ErrnoToStatus(errno, "open " + log);
  common::SpawnOptions spawn;
  spawn.fds = {{STDOUT_FILENO, log_fd.get()}, {STDERR_FILENO, log_fd.get()}};
  // A persistent agent outlives us in its own session; a run's agent is kept in its own process
  // group so Ctrl-C stays at the controller, which ends runs itself, in order.
  spawn.group = options_.persistent ? common::SpawnOptions::Group::kNewSession
                                    : common::SpawnOptions::Group::kNewProcessGroup;
  spawn.clear_signal_mask = false;  // as fork() left it
  ASSIGN_OR_RETURN(const pid_t pid, common::Spawn(argv, spawn));
  log_fd.Reset();
  host.pid = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (!fs::exists(ready, ec)) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      host.pid = -1;
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      return absl::InternalError(absl::StrCat("agent for host '", host.name, "' (", argv[0],
                                              ") exited at start: ", text.str()));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("agent for host '", host.name, "' not ready after 15 s; see ", log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::OkStatus();
}

absl::Status Lab::Destroy() {
  std::lock_guard<std::mutex> lock(mu_);
  if (destroyed_) return absl::OkStatus();
  destroyed_ = true;
  for (auto& host : hosts_) {
    if (host.pid > 0) kill(host.pid, SIGTERM);
  }
  for (auto& host : hosts_) {
    if (host.pid <= 0) continue;
    if (!WaitExit(host.pid, std::chrono::seconds(5))) {
      spdlog::warn("agent of host {} (pid {}) ignored SIGTERM; killing it", host.name, host.pid);
      kill(host.pid, SIGKILL);
      WaitExit(host.pid, std::chrono::seconds(2));
    }
    host.pid = -1;
  }
  std::string failures;
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
    if (absl::Status s = Ip({"netns", "del", *it}); !s.ok()) {
      absl::StrAppend(&failures, s.message(), "; ");
    }
  }
  namespaces_.clear();
  std::error_code ec;
  fs::remove_all(options_.state_dir, ec);
  if (!failures.empty()) return absl::InternalError(failures);
  return absl::OkStatus();
}

absl::Status Lab::Save() const {
  nlohmann::json j;
  j["prefix"] = options_.prefix;
  j["state_dir"] = options_.state_dir;
  j["isolated"] = options_.isolated;
  j["namespaces"] = namespaces_;
  for (const auto& h : hosts_) {
    j["hosts"].push_back({{"name", h.name},
                          {"netns", h.netns},
                          {"address", h.address},
                          {"interface", h.interface},
                          {"addresses", h.addresses},
                          {"agent", h.agent_address},
                          {"pid", h.pid}});
  }
  return common::WriteFileAtomically(options_.state_dir + "/lab.json", j.dump(2) + "\n");
}

absl::StatusOr<std::unique_ptr<Lab>> Lab::Load(const std::string& state_dir) {
  std::ifstream in(state_dir + "/lab.json");
  if (!in)
    return absl::NotFoundError(absl::StrCat("no lab is up (", state_dir, "/lab.json missing)"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(state_dir, "/lab.json is corrupt"));
  }
  LabOptions options;
  options.prefix = j.value("prefix", "");
  options.state_dir = state_dir;
  options.isolated = j.value("isolated", true);
  options.persistent = true;
  std::unique_ptr<Lab> lab(new Lab(options));
  lab->namespaces_ = j.value("namespaces", std::vector<std::string>{});
  for (const auto& h : j.value("hosts", nlohmann::json::array())) {
    LabHost host;
    host.name = h.value("name", "");
    host.netns = h.value("netns", "");
    host.address = h.value("address", "");
    host.interface = h.value("interface", "");
    host.addresses = h.value("addresses", std::vector<std::string>{host.address});
    host.agent_address = h.value("agent", "");
    host.pid = h.value("pid", -1);
    lab->hosts_.push_back(host);
  }
  return lab;
}

}  // namespace synq::controller
