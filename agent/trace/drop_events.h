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
// its destructor ran), disabling their events first: kernel-wide tracing must not outlive the
// run that asked for it. Instances of a live synq-agent are left alone. Returns their names.
std::vector<std::string> RemoveStaleTraceInstances();

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
