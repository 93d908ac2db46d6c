// Helpers for integration tests: the real synq and synq-agent binaries, scenario files, result
// documents, and network namespaces that are always deleted.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace synq::testing {

// Path of a built binary: "controller/synq", "agent/synq-agent".
std::string Binary(const std::string& relative);
// A file under the source tree: "examples/backlog-sweep.yaml".
std::string Source(const std::string& relative);

// A fresh directory under /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

struct ProcessResult {
  int exit_code = -1;
  std::string output;
};

// Runs argv (no shell) to completion, with a time limit after which it is killed.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         std::chrono::seconds limit = std::chrono::seconds(600));

// Starts argv in the background with output to `log`; returns the pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log);
// Waits for a spawned process; returns its exit code (128+signal), or -1 after `limit`.
int WaitFor(pid_t pid, std::chrono::milliseconds limit);

// `synq run FILE --out DIR [extra...]`; returns exit code, output and the parsed result.json
// (null when missing).
struct SynqRun {
  int exit_code = -1;
  std::string output;
  nlohmann::json result;
};
SynqRun RunSynq(const std::string& scenario_file, const std::string& out_dir,
                const std::vector<std::string>& extra = {});

// A network namespace "synq-t<pid>-<name>" that the test owns; deleted on destruction.
class TestNetns {
 public:
  explicit TestNetns(const std::string& name);
  ~TestNetns();
  const std::string& name() const { return name_; }
  // Reads a sysctl ("net.core.somaxconn") inside the namespace.
  long Sysctl(const std::string& key) const;
  // Runs argv inside the namespace (ip netns exec) and returns its output.
  std::string Exec(const std::vector<std::string>& argv) const;
  // The same, with the exit code.
  ProcessResult Run(const std::vector<std::string>& argv) const;

 private:
  std::string name_;
};

// Every namespace whose name starts with "synq-" (test, run or lab namespaces).
std::vector<std::string> SynqNamespaces();

// True when running as root (tests that need namespaces skip otherwise).
bool IsRoot();

// Polls `pred` every 50 ms until it holds or `limit` passes; returns its last answer.
bool PollUntil(const std::function<bool()>& pred, std::chrono::milliseconds limit);

// Makes sure the root namespace routes 198.18.0.0/15 to a blackhole (as `synq lab` does), so
// nothing a test addresses from there can leave the machine. Returns an error text, or "".
std::string EnsureBlackhole();

// What an agent may change in one network namespace, read from inside it.
struct NetnsState {
  std::map<std::string, std::string> sysctls;  // every net.core.* and net.ipv4.* key
  std::string qdiscs;                          // `tc qdisc show`
  // Rules and non-default policies of iptables-save and ip6tables-save (counters, comments and
  // empty built-in chains dropped: a table that a rule once created and that is empty again
  // holds no rule).
  std::string iptables;
  std::string nftables;  // `nft list ruleset` rule lines; empty when nft is not installed
};
// Reads the state of the named namespace ("synq-lab-server", or TestNetns::name()).
NetnsState ReadNetnsState(const std::string& netns);
// What differs, one line per item ("sysctl net.core.somaxconn: 4096 -> 7"); empty when equal.
std::vector<std::string> Differences(const NetnsState& before, const NetnsState& after);

// Kernel-wide tracefs instances named "synq-<pid>-<n>" (the agents' drop-event counters).
std::set<std::string> SynqTraceInstances();
// The pid in "synq-<pid>-<n>", or -1.
pid_t TraceInstanceOwner(const std::string& instance);
// Running processes whose command line contains `text`.
std::vector<pid_t> PidsWithCommandLine(const std::string& text);

// The address a process wrote to its port file (--port-file, --health-port-file, ...): the
// file's first line once it is there and not empty, waiting up to `limit`; "" if it never came.
std::string WaitForPortFile(const std::string& path,
                            std::chrono::milliseconds limit = std::chrono::seconds(10));

// A standalone synq-agent, SIGKILLed by the destructor if still running.
class AgentProcess {
 public:
  AgentProcess() = default;
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;
  // Starts `synq-agent --listen LISTEN --state-dir STATE [--netns NETNS]` with output to `log`
  // and waits until it serves; returns its address ("unix:/...", "198.18.0.1:41234") or "" when
  // it did not come up within 10 s. A non-loopback `listen` gets --insecure when the agent has it.
  std::string Start(const std::string& netns, const std::string& listen,
                    const std::string& state_dir, const std::string& log,
                    const std::vector<std::string>& extra_args = {});
  pid_t pid() const { return pid_; }
  // True while the process runs (reaps it once it has exited).
  bool Alive();
  // Sends `sig` (not SIGSTOP/SIGCONT: see Freeze/Thaw) and waits up to `limit` for the exit;
  // returns the exit code as WaitFor does, or -1 if still running.
  int Signal(int sig, std::chrono::milliseconds limit);
  void Freeze() const;
  void Thaw() const;

 private:
  pid_t pid_ = -1;
};

// A tmpfs of `bytes` mounted on `dir` (created), unmounted by the destructor.
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, size_t bytes);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  // "" once mounted, else why not.
  const std::string& error() const { return error_; }
  // Writes a file until the file system is full; returns the bytes written.
  size_t Fill() const;
  // Remounts read-only or read-write; returns the error text, or "".
  std::string SetReadOnly(bool read_only) const;

 private:
  std::string dir_;
  std::string error_;
};

}  // namespace synq::testing
