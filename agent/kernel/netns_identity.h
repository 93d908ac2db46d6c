// Which network namespace a journal belongs to: the (device, inode) pair of the namespace file,
// which the kernel keeps unique while the namespace lives. Journals record it so a restarted
// agent restores only into the namespace the changes were made in.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace synq::agent {

struct NetnsIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool operator==(const NetnsIdentity&) const = default;
  std::string ToString() const;  // "net:[4026531840] (dev 4)"
};

// The calling thread's network namespace (/proc/thread-self/ns/net).
absl::StatusOr<NetnsIdentity> CurrentNetns();

// {"dev": D, "ino": I} and back; the decode error says what is missing.
nlohmann::json NetnsToJson(const NetnsIdentity& id);
absl::StatusOr<NetnsIdentity> NetnsFromJson(const nlohmann::json& j);

}  // namespace synq::agent
