#include "controller/scenario/paths.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace synq::controller::scenario {

bool IsValidHostName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxHostNameLength) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = absl::ascii_islower(c) || absl::ascii_isdigit(c) || (i > 0 && c == '-');
    if (!ok) return false;
  }
  return true;
}

bool IsValidItemName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxItemNameLength) return false;
  for (const char c : name) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

std::string JoinPath(absl::string_view prefix, absl::string_view field) {
  if (prefix.empty()) return std::string(field);
  return absl::StrCat(prefix, ".", field);
}

std::string IndexPath(absl::string_view section, size_t index) {
  return absl::StrCat(section, "[", index, "]");
}

}  // namespace synq::controller::scenario
