#include "agent/kernel/netns_identity.h"

#include <sys/stat.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace synq::agent {

std::string NetnsIdentity::ToString() const {
  return absl::StrCat("net:[", ino, "] (dev ", dev, ")");
}

absl::StatusOr<NetnsIdentity> CurrentNetns() {
  struct stat st;
  if (::stat("/proc/thread-self/ns/net", &st) != 0) {
    return absl::ErrnoToStatus(errno, "stat /proc/thread-self/ns/net");
  }
  return NetnsIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

nlohmann::json NetnsToJson(const NetnsIdentity& id) { return {{"dev", id.dev}, {"ino", id.ino}}; }

absl::StatusOr<NetnsIdentity> NetnsFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("dev") || !j["dev"].is_number_unsigned() ||
      !j.contains("ino") || !j["ino"].is_number_unsigned()) {
    return absl::InvalidArgumentError("\"netns\" needs unsigned \"dev\" and \"ino\"");
  }
  return NetnsIdentity{j["dev"].get<uint64_t>(), j["ino"].get<uint64_t>()};
}

}  // namespace synq::agent
