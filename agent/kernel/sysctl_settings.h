// Kernel settings an agent may change, with validation, read-back, a crash journal and restore.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/kernel/netns_identity.h"

namespace synq::agent {

// An allowed sysctl: name, /proc/sys path, valid range.
struct SettingDef {
  std::string key;  // "net.core.somaxconn"
  int64_t min = 0;
  int64_t max = 0;
};

// The one catalog of settings synq may change, with their ranges. Controllers read it from
// HostInfo.setting_catalog; nobody else keeps a copy.
const std::vector<SettingDef>& AllowedSettings();

// Checks a key is allowed and the value in range; the error names the key and the range.
absl::Status ValidateSetting(const std::string& key, int64_t value);

// "/proc/sys/net/core/somaxconn" for "net.core.somaxconn" under proc_sys_dir ("/proc/sys").
std::string SysctlPath(const std::string& proc_sys_dir, const std::string& key);

// Applies settings and restores the originals. Before the first write it journals the original
// values and the network namespace to `journal_path` (common::WriteFileAtomically), so a
// restarted agent can restore after a crash with RestoreFromJournal. A journal already there
// when the first value would be written is a crashed run's: Apply refuses (FailedPrecondition
// naming it) rather than overwrite the real originals. The destructor restores.
class SettingsGuard {
 public:
  SettingsGuard(std::string proc_sys_dir, std::string journal_path);
  ~SettingsGuard();
  SettingsGuard(const SettingsGuard&) = delete;
  SettingsGuard& operator=(const SettingsGuard&) = delete;

  // Validates all first (nothing is written if one is bad), journals originals, writes each
  // value and reads it back. Returns the effective values. On a write failure, restores what it
  // wrote and returns the error naming the key.
  absl::StatusOr<std::map<std::string, int64_t>> Apply(
      const std::map<std::string, int64_t>& settings);

  // Writes every original value back (reads back to check), then deletes the journal.
  // Returns the values restored. Idempotent.
  absl::StatusOr<std::map<std::string, int64_t>> Restore();

  bool changed() const { return !originals_.empty(); }

 private:
  absl::Status WriteJournal() const;
  std::string proc_sys_dir_;
  std::string journal_path_;
  std::map<std::string, int64_t> originals_;
  NetnsIdentity netns_;  // where the originals were read (set with the first journal)
};

// Reads current values of every allowed setting (missing files are skipped).
std::map<std::string, int64_t> ReadSettings(const std::string& proc_sys_dir = "/proc/sys");

// Reads a journal left by a crashed agent, restores each value and deletes the journal.
// No journal: OK, empty map. A journal that does not parse (DataLoss) or was written in another
// network namespace (FailedPrecondition) is kept; the error names its path and why.
absl::StatusOr<std::map<std::string, int64_t>> RestoreFromJournal(const std::string& proc_sys_dir,
                                                                  const std::string& journal_path);

}  // namespace synq::agent
