// The one way synq writes a file that must be whole or absent after a crash (journals, the
// agent's port file): a temporary file in the same directory, fsync, rename, fsync the directory.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace synq::common {

// Replaces `path` with `contents` atomically: writes "<path>.tmp.<pid>" (O_CLOEXEC, mode `mode`,
// created fresh), fsyncs it, renames it over `path` and fsyncs the directory, creating missing
// parent directories first. A crash leaves the old file or the new one, never a mix. On failure
// the temporary file is removed and the error names the path and carries errno.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                 int mode = 0600);

// Reads a whole file. NOT_FOUND when it does not exist; other errors name the path and errno.
absl::Status ReadWholeFile(const std::string& path, std::string* contents);

}  // namespace synq::common
