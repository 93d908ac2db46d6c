// The shaping journal: what a ShapingSet has installed (or is about to), written atomically
// before each install, so a restarted agent can remove what a crashed one left behind.
//
// Format (JSON):
//   {"version": 1, "pid": 1234, "entries": [
//     {"backend": "netem", "ifindex": 7, "ifname": "eth0", "handle": 1366360064},
//     {"backend": "nfqueue", "queue_num": 5123, "rules": [
//       {"add": ["iptables", "-w", "-t", "mangle", "-A", "POSTROUTING", ...],
//        "remove": ["iptables", "-w", "-t", "mangle", "-D", "POSTROUTING", ...]}]}]}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/shaping/nfqueue_rule.h"
#include "agent/shaping/shaper.h"

namespace synq::agent {

struct JournalEntry {
  ShapingBackend backend = ShapingBackend::kNetem;  // kNetem or kNfqueue
  // netem
  int ifindex = 0;
  std::string ifname;
  uint32_t handle = 0;
  // nfqueue
  int queue_num = 0;
  std::vector<IptablesRule> rules;
  bool operator==(const JournalEntry&) const = default;
};

std::string EncodeJournal(const std::vector<JournalEntry>& entries);
absl::StatusOr<std::vector<JournalEntry>> DecodeJournal(const std::string& text);

// Writes path.tmp.<pid> and renames it over path, creating parent directories.
absl::Status WriteJournal(const std::string& path, const std::vector<JournalEntry>& entries);
// NotFound when there is no journal.
absl::StatusOr<std::vector<JournalEntry>> ReadJournal(const std::string& path);
// Missing is fine.
absl::Status DeleteJournal(const std::string& path);

}  // namespace synq::agent
