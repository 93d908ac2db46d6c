// The shaping journal: what a ShapingSet has installed (or is about to), written atomically
// before each install, so a restarted agent can remove what a crashed one left behind. It holds
// data only; the removal is rebuilt from it (never a command read from disk).
//
// Format (JSON, version 2):
//   {"version": 2, "pid": 1234, "netns": {"dev": 4, "ino": 4026531840}, "entries": [
//     {"backend": "netem", "ifindex": 7, "ifname": "eth0", "handle": 1366360064},
//     {"backend": "nfqueue", "queue_num": 5123, "rules": [
//       {"family": "ipv4", "table": "mangle", "chain": "POSTROUTING", "out_interface": "eth0",
//        "destination": "198.18.0.3/32", "queue_num": 5123, "queue_bypass": true}]}]}
// Version 1 held iptables argv; such a journal is refused, never executed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/kernel/netns_identity.h"
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

struct ShapingJournal {
  NetnsIdentity netns;  // where the entries were installed
  std::vector<JournalEntry> entries;
};

std::string EncodeJournal(const ShapingJournal& journal);
// DataLoss naming what is wrong (a version-1 journal of argv included); every rule is validated
// (ValidateIptablesRule).
absl::StatusOr<ShapingJournal> DecodeJournal(const std::string& text);

// Writes the journal (common::WriteFileAtomically, mode 0600).
absl::Status WriteJournal(const std::string& path, const ShapingJournal& journal);
// NotFound when there is no journal; any other error names the path, and the file is kept.
absl::StatusOr<ShapingJournal> ReadJournal(const std::string& path);
// Missing is fine.
absl::Status DeleteJournal(const std::string& path);

}  // namespace synq::agent
