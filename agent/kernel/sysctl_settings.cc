#include "agent/kernel/sysctl_settings.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "agent/kernel/netns_identity.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace synq::agent {
namespace {

// 2: with the network namespace the values belong to. (Journals without a version predate it.)
constexpr int kJournalVersion = 2;

const SettingDef* FindSetting(const std::string& key) {
  for (const SettingDef& def : AllowedSettings()) {
    if (def.key == key) return &def;
  }
  return nullptr;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  std::string text;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

absl::Status WriteAll(int fd, std::string_view text, const std::string& path) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("write ", path));
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ReadValue(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value)) {
    return absl::DataLossError(
        absl::StrCat(path, " holds '", absl::StripAsciiWhitespace(text), "', not a number"));
  }
  return value;
}

// Writes the value as sysctl(8) does (open with O_TRUNC, "value\n") and reads it back.
absl::StatusOr<int64_t> WriteAndReadBack(const std::string& proc_sys_dir, const std::string& key,
                                         int64_t value) {
  const std::string path = SysctlPath(proc_sys_dir, key);
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return absl::ErrnoToStatus(errno, absl::StrCat("setting ", key, ": open ", path));
  absl::Status written = WriteAll(fd.get(), absl::StrCat(value, "\n"), path);
  if (!written.ok()) {
    return absl::Status(written.code(), absl::StrCat("setting ", key, ": ", written.message()));
  }
  // proc_sys reports a rejected value at close for some handlers; check it.
  if (::close(fd.Release()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("setting ", key, ": close ", path));
  }
  absl::StatusOr<int64_t> back = ReadValue(path);
  if (!back.ok()) {
    return absl::Status(back.status().code(),
                        absl::StrCat("setting ", key, ": read back: ", back.status().message()));
  }
  if (*back != value) {
    spdlog::warn("sysctl {}: wrote {}, kernel reports {}", key, value, *back);
  }
  return *back;
}

// Writes `settings` in order; on the first failure writes `previous` back to what was already
// written and returns the error. Returns the effective values.
absl::StatusOr<std::map<std::string, int64_t>> WriteAllOrRollBack(
    const std::string& proc_sys_dir, const std::map<std::string, int64_t>& settings,
    const std::map<std::string, int64_t>& previous) {
  std::map<std::string, int64_t> effective;
  std::vector<std::string> written;
  for (const auto& [key, value] : settings) {
    absl::StatusOr<int64_t> back = WriteAndReadBack(proc_sys_dir, key, value);
    if (back.ok()) {
      effective[key] = *back;
      written.push_back(key);
      continue;
    }
    std::string message(back.status().message());
    for (auto it = written.rbegin(); it != written.rend(); ++it) {
      absl::StatusOr<int64_t> undone = WriteAndReadBack(proc_sys_dir, *it, previous.at(*it));
      if (!undone.ok()) {
        absl::StrAppend(&message, "; rollback failed: ", undone.status().message());
      }
    }
    return absl::Status(back.status().code(), message);
  }
  return effective;
}

absl::Status WriteJournalFile(const std::string& path, const std::string& proc_sys_dir,
                              const NetnsIdentity& netns,
                              const std::map<std::string, int64_t>& originals) {
  nlohmann::json journal = {{"version", kJournalVersion},
                            {"netns", NetnsToJson(netns)},
                            {"proc_sys_dir", proc_sys_dir},
                            {"settings", originals}};
  absl::Status written = common::WriteFileAtomically(path, journal.dump(2) + "\n");
  if (!written.ok()) {
    return absl::Status(written.code(), absl::StrCat("sysctl journal: ", written.message()));
  }
  return absl::OkStatus();
}

absl::Status RemoveJournal(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat("journal: unlink ", path));
  }
  return absl::OkStatus();
}

// Writes every original back; returns the keys that failed with the combined error.
absl::Status RestoreAll(const std::string& proc_sys_dir,
                        const std::map<std::string, int64_t>& originals,
                        std::map<std::string, int64_t>* restored,
                        std::map<std::string, int64_t>* failed) {
  std::vector<std::string> errors;
  for (const auto& [key, value] : originals) {
    absl::StatusOr<int64_t> back = WriteAndReadBack(proc_sys_dir, key, value);
    if (back.ok() && *back == value) {
      (*restored)[key] = *back;
      continue;
    }
    (*failed)[key] = value;
    errors.push_back(back.ok() ? absl::StrCat("setting ", key, ": restored ", value,
                                              " but the kernel reports ", *back)
                               : std::string(back.status().message()));
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("restore: ", absl::StrJoin(errors, "; ")));
}

}  // namespace

const std::vector<SettingDef>& AllowedSettings() {
  static const std::vector<SettingDef> kAllowed = {
      {"net.core.somaxconn", 0, INT_MAX},
      {"net.ipv4.tcp_abort_on_overflow", 0, 1},
      {"net.ipv4.tcp_synack_retries", 0, 255},
      {"net.ipv4.tcp_syn_retries", 1, 127},
      {"net.ipv4.tcp_syncookies", 0, 2},
      {"net.ipv4.tcp_max_syn_backlog", 1, INT_MAX},
      // Kernels since 6.5 only; hosts without it simply do not report it.
      {"net.ipv4.tcp_syn_linear_timeouts", 0, 255},
  };
  return kAllowed;
}

absl::Status ValidateSetting(const std::string& key, int64_t value) {
  const SettingDef* def = FindSetting(key);
  if (def == nullptr) {
    std::vector<std::string> keys;
    for (const SettingDef& d : AllowedSettings()) keys.push_back(d.key);
    return absl::InvalidArgumentError(
        absl::StrCat("unknown setting '", key, "': allowed are ", absl::StrJoin(keys, ", ")));
  }
  if (value < def->min || value > def->max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "setting ", key, " = ", value, " is out of range [", def->min, ", ", def->max, "]"));
  }
  return absl::OkStatus();
}

std::string SysctlPath(const std::string& proc_sys_dir, const std::string& key) {
  return absl::StrCat(proc_sys_dir, "/", absl::StrReplaceAll(key, {{".", "/"}}));
}

SettingsGuard::SettingsGuard(std::string proc_sys_dir, std::string journal_path)
    : proc_sys_dir_(std::move(proc_sys_dir)), journal_path_(std::move(journal_path)) {}

SettingsGuard::~SettingsGuard() {
  if (!changed()) return;
  absl::StatusOr<std::map<std::string, int64_t>> restored = Restore();
  if (!restored.ok()) {
    spdlog::error("sysctl settings not restored (journal {} kept): {}", journal_path_,
                  restored.status().ToString());
  }
}

absl::StatusOr<std::map<std::string, int64_t>> SettingsGuard::Apply(
    const std::map<std::string, int64_t>& settings) {
  for (const auto& [key, value] : settings) RETURN_IF_ERROR(ValidateSetting(key, value));

  // Current values: the rollback target for this call, and the originals for keys this guard
  // has not touched yet. A key we already changed keeps its first original: the current value
  // is ours.
  std::map<std::string, int64_t> previous;
  std::map<std::string, int64_t> originals = originals_;
  for (const auto& [key, value] : settings) {
    absl::StatusOr<int64_t> current = ReadValue(SysctlPath(proc_sys_dir_, key));
    if (!current.ok()) {
      return absl::Status(current.status().code(),
                          absl::StrCat("setting ", key, ": ", current.status().message()));
    }
    previous[key] = *current;
    originals.emplace(key, *current);
  }
  if (originals.size() != originals_.size()) {
    if (originals_.empty()) {
      // A journal this guard did not write is a crashed run's: its values are the real
      // originals, and ours (read now) are the crashed run's load-test values.
      if (::access(journal_path_.c_str(), F_OK) == 0 || errno != ENOENT) {
        return absl::FailedPreconditionError(absl::StrCat(
            "sysctl journal ", journal_path_,
            " is left by an earlier run and not restored; refusing to overwrite it (the agent "
            "restores it at start; else restore the values it lists and remove it by hand)"));
      }
      ASSIGN_OR_RETURN(netns_, CurrentNetns());
    }
    // Journal before the first write, so a crash after it can always be undone.
    RETURN_IF_ERROR(WriteJournalFile(journal_path_, proc_sys_dir_, netns_, originals));
    originals_ = std::move(originals);
  }
  return WriteAllOrRollBack(proc_sys_dir_, settings, previous);
}

absl::StatusOr<std::map<std::string, int64_t>> SettingsGuard::Restore() {
  std::map<std::string, int64_t> restored;
  if (originals_.empty()) return restored;
  std::map<std::string, int64_t> failed;
  absl::Status status = RestoreAll(proc_sys_dir_, originals_, &restored, &failed);
  originals_ = std::move(failed);
  if (!status.ok()) {
    // Keep only what is still to restore, for a retry or a restarted agent.
    absl::Status journaled = WriteJournal();
    if (!journaled.ok()) {
      return absl::Status(status.code(), absl::StrCat(status.message(), "; ", journaled.message()));
    }
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), " (journal ", journal_path_, " kept)"));
  }
  RETURN_IF_ERROR(RemoveJournal(journal_path_));
  return restored;
}

absl::Status SettingsGuard::WriteJournal() const {
  return WriteJournalFile(journal_path_, proc_sys_dir_, netns_, originals_);
}

std::map<std::string, int64_t> ReadSettings(const std::string& proc_sys_dir) {
  std::map<std::string, int64_t> out;
  for (const SettingDef& def : AllowedSettings()) {
    absl::StatusOr<int64_t> value = ReadValue(SysctlPath(proc_sys_dir, def.key));
    if (value.ok()) out[def.key] = *value;
  }
  return out;
}

absl::StatusOr<std::map<std::string, int64_t>> RestoreFromJournal(const std::string& proc_sys_dir,
                                                                  const std::string& journal_path) {
  std::map<std::string, int64_t> restored;
  if (::access(journal_path.c_str(), F_OK) != 0 && errno == ENOENT) return restored;
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(journal_path));

  // A journal we cannot understand is left in place for a human: guessing could leave the
  // machine with our load-test settings forever.
  auto corrupt = [&journal_path](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("sysctl journal ", journal_path, " is corrupt (", why, "); left in place"));
  };
  const nlohmann::json journal = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (journal.is_discarded() || !journal.is_object()) return corrupt("not a JSON object");
  const auto settings = journal.find("settings");
  if (settings == journal.end() || !settings->is_object()) return corrupt("no \"settings\" object");
  std::map<std::string, int64_t> originals;
  for (const auto& [key, value] : settings->items()) {
    if (FindSetting(key) == nullptr) return corrupt(absl::StrCat("unknown setting '", key, "'"));
    if (!value.is_number_integer()) return corrupt(absl::StrCat("'", key, "' is not an integer"));
    originals[key] = value.get<int64_t>();
  }
  const auto recorded = journal.find("netns");
  if (recorded == journal.end()) return corrupt("no \"netns\": written by an older agent");
  absl::StatusOr<NetnsIdentity> written_in = NetnsFromJson(*recorded);
  if (!written_in.ok()) return corrupt(written_in.status().message());
  ASSIGN_OR_RETURN(NetnsIdentity here, CurrentNetns());
  if (!(*written_in == here)) {
    // Writing these values here would change a namespace that was never changed, and deleting
    // the journal would lose the real leftovers.
    return absl::FailedPreconditionError(
        absl::StrCat("sysctl journal ", journal_path, " was written in network namespace ",
                     written_in->ToString(), ", this agent runs in ", here.ToString(),
                     "; kept: start the agent in that namespace to restore it"));
  }
  if (const auto dir = journal.find("proc_sys_dir");
      dir != journal.end() && dir->is_string() && dir->get<std::string>() != proc_sys_dir) {
    spdlog::warn("sysctl journal {} was written for {}; restoring into {}", journal_path,
                 dir->get<std::string>(), proc_sys_dir);
  }

  std::map<std::string, int64_t> failed;
  absl::Status status = RestoreAll(proc_sys_dir, originals, &restored, &failed);
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), " (journal ", journal_path, " kept)"));
  }
  RETURN_IF_ERROR(RemoveJournal(journal_path));
  return restored;
}

}  // namespace synq::agent
