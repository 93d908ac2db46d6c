#include "controller/result/results_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"

namespace synq::controller::result {
namespace fs = std::filesystem;

namespace {

std::string SafeName(const std::string& scenario) {
  std::string out;
  for (char c : scenario.substr(0, 64)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '-');
  }
  // "." or ".." would name another folder.
  if (out.empty() || out.find_first_not_of('.') == std::string::npos) out = "scenario";
  return out;
}

}  // namespace

absl::StatusOr<std::string> CreateRunDir(const std::string& results_dir,
                                         const std::string& scenario, absl::Time now) {
  std::error_code ec;
  fs::create_directories(results_dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("--results-dir ", results_dir, ": ", ec.message()));
  const std::string base =
      absl::StrCat(results_dir, "/", absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone()),
                   "-", SafeName(scenario));
  for (int n = 1; n < 1000; ++n) {
    const std::string dir = n == 1 ? base : absl::StrCat(base, "-", n);
    // mkdir, not create_directories: EEXIST is how two runs in one second tell each other apart.
    if (mkdir(dir.c_str(), 0755) == 0) return dir;
    if (errno != EEXIST) {
      return absl::ErrnoToStatus(errno, absl::StrCat("--results-dir: mkdir ", dir));
    }
  }
  return absl::AlreadyExistsError(absl::StrCat("--results-dir: ", base, "-2..999 all exist"));
}

absl::StatusOr<std::string> LatestResultFile(const std::string& results_dir) {
  const fs::path link = fs::path(results_dir) / kLatestLink;
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(link, ec))) {
    if (fs::exists(fs::symlink_status(link, ec))) {
      return absl::FailedPreconditionError(
          absl::StrCat("--baseline latest: ", link.string(), " exists but is not a symlink"));
    }
    return std::string();
  }
  const fs::path target = fs::read_symlink(link, ec);
  if (ec) return absl::InternalError(absl::StrCat(link.string(), ": ", ec.message()));
  const fs::path file =
      (target.is_absolute() ? target : fs::path(results_dir) / target) / "result.json";
  if (!fs::exists(file, ec)) {
    return absl::NotFoundError(absl::StrCat("--baseline latest: ", link.string(), " -> ",
                                            target.string(), " but ", file.string(),
                                            " does not exist (run folder removed?)"));
  }
  return file.lexically_normal().string();
}

absl::Status UpdateLatest(const std::string& results_dir, const std::string& run_dir) {
  const fs::path link = fs::path(results_dir) / kLatestLink;
  const fs::path tmp = fs::path(results_dir) / absl::StrCat(".", kLatestLink, ".tmp.", getpid());
  const std::string target = fs::path(run_dir).filename().string();
  std::error_code ec;
  fs::remove(tmp, ec);
  if (symlink(target.c_str(), tmp.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("symlink ", tmp.string()));
  }
  // rename(2) replaces a symlink atomically (a directory it points at is not followed).
  if (rename(tmp.c_str(), link.c_str()) != 0) {
    const int e = errno;
    fs::remove(tmp, ec);
    return absl::ErrnoToStatus(e, absl::StrCat("rename ", tmp.string(), " -> ", link.string()));
  }
  common::UniqueFd dir(open(results_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir || fsync(dir.get()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("fsync ", results_dir));
  }
  return absl::OkStatus();
}

}  // namespace synq::controller::result
