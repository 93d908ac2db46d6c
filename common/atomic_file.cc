#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"

namespace synq::common {
namespace {

absl::Status Errno(int err, const std::string& what, const std::string& path) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " ", path));
}

absl::Status WriteAll(int fd, std::string_view text, const std::string& path) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(errno, "write", path);
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, int mode) {
  const std::filesystem::path target(path);
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::ErrnoToStatus(ec.value(),
                               absl::StrCat("write ", path, ": create directory ", dir));
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  // O_EXCL after an unlink: a stale temporary of a crashed writer with this pid (or a symlink
  // planted there) is never written through.
  ::unlink(tmp.c_str());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) return Errno(errno, absl::StrCat("write ", path, ": open"), tmp);
  absl::Status status = WriteAll(fd.get(), contents, tmp);
  // open() applies the umask; the mode asked for is the mode the file gets.
  if (status.ok() && ::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) {
    status = Errno(errno, absl::StrCat("write ", path, ": fchmod"), tmp);
  }
  if (status.ok() && ::fsync(fd.get()) != 0) {
    status = Errno(errno, absl::StrCat("write ", path, ": fsync"), tmp);
  }
  if (status.ok() && ::close(fd.Release()) != 0) {
    status = Errno(errno, absl::StrCat("write ", path, ": close"), tmp);
  }
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = Errno(errno, absl::StrCat("write ", path, ": rename"), tmp);
  }
  if (!status.ok()) {
    fd.Reset();
    ::unlink(tmp.c_str());
    return status;
  }
  // The rename is durable only once the directory is.
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) return Errno(errno, absl::StrCat("write ", path, ": open directory"), dir);
  if (::fsync(dfd.get()) != 0) return Errno(errno, absl::StrCat("write ", path, ": fsync"), dir);
  return absl::OkStatus();
}

absl::Status ReadWholeFile(const std::string& path, std::string* contents) {
  contents->clear();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return Errno(errno, "open", path);
  }
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(errno, "read", path);
    }
    if (n == 0) return absl::OkStatus();
    contents->append(buf, static_cast<size_t>(n));
  }
}

}  // namespace synq::common
