// Embedded hosts: synq-agent processes that synq starts itself. As root each host is its own
// network namespace, joined to the others by veth pairs on a bridge in a hub namespace and
// addressed from 198.18.0.0/15; without root they share the current namespace.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace synq::controller {

struct LabHost {
  std::string name;
  std::string netns;          // empty without namespaces
  std::string address;        // what peers connect to: "198.18.0.2" (or "127.0.0.1")
  std::string interface;      // "eth0" in a namespace; empty otherwise
  // Every address of the host, `address` first; more than one with `hosts: {h: {addresses: N}}`.
  std::vector<std::string> addresses;
  std::string agent_address;  // "unix:/run/synq/.../server.sock"
  pid_t pid = -1;
};

struct LabOptions {
  std::vector<std::string> hosts;  // embedded host names
  // Host name -> how many addresses it gets (absent = 1). The extra ones are 198.18.<i>.2, ...
  // (i = the host's index), on-link for every host through a 198.18.0.0/15 route on eth0.
  std::map<std::string, int> addresses;
  // Namespace prefix: "synq-<pid>" for a run, "synq-lab" for `synq lab up`.
  std::string prefix;
  std::string state_dir;    // sockets, agent logs and journals
  bool isolated = true;     // namespaces (needs root)
  bool persistent = false;  // lab up: agents outlive synq, no reaper
  std::string agent_binary;
};

class Lab {
 public:
  // Creates the hosts and starts an agent in each; on failure removes what it made.
  static absl::StatusOr<std::unique_ptr<Lab>> Create(const LabOptions& options);
  ~Lab();  // Destroy() unless persistent.
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  const std::vector<LabHost>& hosts() const { return hosts_; }
  const LabHost* Find(const std::string& name) const;

  // Stops the agents (SIGTERM, so they restore), deletes namespaces and the state dir.
  // Idempotent and safe to call from a signal-handling thread.
  absl::Status Destroy();

  // Writes/reads the description of a persistent lab (state_dir/lab.json).
  absl::Status Save() const;
  static absl::StatusOr<std::unique_ptr<Lab>> Load(const std::string& state_dir);

 private:
  explicit Lab(LabOptions options) : options_(std::move(options)) {}
  absl::Status Build();
  absl::Status StartAgent(LabHost& host);
  // The host's extra addresses (LabOptions::addresses) and the on-link route to all of them.
  absl::Status AddExtraAddresses(LabHost& host, int index);

  LabOptions options_;
  std::vector<LabHost> hosts_;
  std::vector<std::string> namespaces_;  // every namespace created, hub included
  std::mutex mu_;
  bool destroyed_ = false;
  int reaper_pipe_ = -1;  // write end held open; the reaper cleans up when it closes
};

// Makes sure the root namespace routes 198.18.0.0/15 to a blackhole, so that a socket opened
// in the wrong namespace fails locally instead of sending benchmark traffic off the machine.
absl::Status EnsureBenchmarkBlackhole();

// Deletes namespaces "synq-<pid>-*" whose synq process is gone (a crashed or killed run, its
// reaper killed too). Only synq's own: by name prefix and a dead owner pid.
void RemoveStaleNamespaces();

// Deletes the state directories of runs whose synq process is gone: /run/synq/run-<pid> and
// /tmp/synq-<uid>-<pid> (sockets, agent logs and journals of embedded hosts).
void RemoveStaleRunDirs();

// The synq-agent binary: $SYNQ_AGENT, else next to this executable, else ../agent/.
std::string FindAgentBinary();

}  // namespace synq::controller
