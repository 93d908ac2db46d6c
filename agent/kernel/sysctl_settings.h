// Kernel settings an agent may change, with validation, read-back, a crash journal and restore.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace synq::agent {

// An allowed sysctl: name, /proc/sys path, valid range.
struct SettingDef {
  std::string key;  // "net.core.somaxconn"
  int64_t min = 0;
  int64_t max = 0;
};

// net.core.somaxconn, net.ipv4.tcp_abort_on_overflow, tcp_synack_retries, tcp_syn_retries,
// tcp_syncookies, tcp_max_syn_backlog.
const std::vector<SettingDef>& AllowedSettings();

// Checks a key is allowed and the value in range; the error names the key and the range.
absl::Status ValidateSetting(const std::string& key, int64_t value);

// "/proc/sys/net/core/somaxconn" for "net.core.somaxconn" under proc_sys_dir ("/proc/sys").
std::string SysctlPath(const std::string& proc_sys_dir, const std::string& key);

// Applies settings and restores the originals. Before the first write it journals the original
// values to `journal_path` (written atomically), so a restarted agent can restore after a crash
// with RestoreFromJournal. The destructor restores.
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
};

// Reads current values of every allowed setting (missing files are skipped).
std::map<std::string, int64_t> ReadSettings(const std::string& proc_sys_dir = "/proc/sys");

// Reads a journal left by a crashed agent, restores each value and deletes the journal.
// No journal: OK, empty map.
absl::StatusOr<std::map<std::string, int64_t>> RestoreFromJournal(const std::string& proc_sys_dir,
                                                                  const std::string& journal_path);

}  // namespace synq::agent
