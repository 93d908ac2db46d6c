// Helpers for integration tests: the real synq and synq-agent binaries, scenario files, result
// documents, and network namespaces that are always deleted.
#pragma once

#include <sys/types.h>

#include <chrono>
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

 private:
  std::string name_;
};

// Every namespace whose name starts with "synq-" (test, run or lab namespaces).
std::vector<std::string> SynqNamespaces();

// True when running as root (tests that need namespaces skip otherwise).
bool IsRoot();

}  // namespace synq::testing
