// Counts the kernel trace events that explain handshake drops, through a private tracefs
// instance: skb:kfree_skb with reason TCP_LISTEN_OVERFLOW, tcp:tcp_retransmit_synack and
// tcp:tcp_send_reset. Trace events are kernel-wide: TCP events are filtered on the listener
// ports, kfree_skb cannot be and counts every namespace.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace synq::agent {

// Empty when tracefs can be used (mounting it at /sys/kernel/tracing if needed); else why not.
std::string TracefsUnavailableReason();

// Removes the "synq-<pid>-<n>" instances whose agent is gone (it crashed or was killed before
// its destructor ran; a zombie not yet reaped counts as gone), disabling their events first:
// kernel-wide tracing must not outlive the run that asked for it. Instances of a live
// synq-agent are left alone. Returns their names.
std::vector<std::string> RemoveStaleTraceInstances();

// Where DropEventCounter journals the instances it creates (common::WriteFileAtomically), so
// the next agent on this state dir removes them whatever became of the pid. "" (the default):
// no journal. Set once at start, before any counter.
void SetTraceJournal(std::string path);

// Removes every instance the journal at `path` lists (they belong to the agent that ran on this
// state dir before, which is gone) and deletes the journal. No journal: OK. A journal that does
// not parse, or names something other than a synq instance, is kept; the error names its path.
// Returns the names removed.
absl::StatusOr<std::vector<std::string>> RemoveTraceInstancesFromJournal(const std::string& path);

class DropEventCounter {
 public:
  // Creates instance "synq-<pid>-<n>" and enables the events, TCP ones filtered on `ports`.
  static absl::StatusOr<std::unique_ptr<DropEventCounter>> Start(
      const std::vector<uint16_t>& ports);
  ~DropEventCounter();  // Removes the instance.
  DropEventCounter(const DropEventCounter&) = delete;
  DropEventCounter& operator=(const DropEventCounter&) = delete;

  // Event name ("kfree_skb:TCP_LISTEN_OVERFLOW", "tcp_retransmit_synack", "tcp_send_reset") ->
  // count since Start. Reads the instance's buffer; call once, at the end of the run.
  absl::StatusOr<std::map<std::string, int64_t>> Read();

 private:
  explicit DropEventCounter(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
  std::vector<uint16_t> ports_;
};

}  // namespace synq::agent
