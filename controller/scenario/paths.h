// Names and error paths: which host and item names are valid, and how an error names the field
// it is about ("listeners.l1.backlog", "floods[2].target").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace synq::controller::scenario {

inline constexpr size_t kMaxHostNameLength = 15;  // IFNAMSIZ - 1: host names become netns/veth
inline constexpr size_t kMaxItemNameLength = 64;
// Agents in one host group (discovered or listed).
inline constexpr int64_t kMaxGroupSize = 4096;

// [a-z0-9][a-z0-9-]*, at most kMaxHostNameLength characters.
bool IsValidHostName(absl::string_view name);
// Listener and flood names appear in sweep paths ("listeners.l1.backlog") and flood targets,
// so letters, digits, - and _ only, at most kMaxItemNameLength characters.
bool IsValidItemName(absl::string_view name);

// "prefix.field", or "field" for an empty prefix.
std::string JoinPath(absl::string_view prefix, absl::string_view field);
// "section[index]".
std::string IndexPath(absl::string_view section, size_t index);

// "listeners.l1" when the item has a valid name it is the first to use, else "listeners[2]".
template <typename T>
std::string ItemPath(absl::string_view section, const std::vector<T>& items, size_t index) {
  if constexpr (requires { items[index].name; }) {
    const std::string& name = items[index].name;
    if (IsValidItemName(name)) {
      bool first = true;
      for (size_t i = 0; i < index; ++i) first = first && items[i].name != name;
      if (first) return JoinPath(section, name);
    }
  }
  return IndexPath(section, index);
}

}  // namespace synq::controller::scenario
