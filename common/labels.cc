#include "common/labels.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace synq::common {
namespace {

constexpr size_t kMaxName = 63;
constexpr size_t kMaxPrefix = 253;

// 1-63 of [A-Za-z0-9-_.], alphanumeric at both ends.
bool IsName(absl::string_view s) {
  if (s.empty() || s.size() > kMaxName) return false;
  if (!absl::ascii_isalnum(s.front()) || !absl::ascii_isalnum(s.back())) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// A DNS subdomain: dot-separated labels of [a-z0-9-], alphanumeric at both ends.
bool IsDnsSubdomain(absl::string_view s) {
  if (s.empty() || s.size() > kMaxPrefix) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t dot = s.find('.', start);
    if (dot == absl::string_view::npos) dot = s.size();
    absl::string_view part = s.substr(start, dot - start);
    if (part.empty() || part.size() > 63) return false;
    if (!absl::ascii_isalnum(part.front()) || !absl::ascii_isalnum(part.back())) return false;
    for (char c : part) {
      if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) return false;
    }
    start = dot + 1;
  }
  return true;
}

}  // namespace

absl::Status CheckLabelKey(absl::string_view key) {
  const size_t slash = key.find('/');
  absl::string_view name = key;
  if (slash != absl::string_view::npos) {
    if (!IsDnsSubdomain(key.substr(0, slash))) {
      return absl::InvalidArgumentError(
          absl::StrCat("label key '", key,
                       "': the prefix before '/' must be a DNS subdomain (lowercase, at most ",
                       kMaxPrefix, " characters)"));
    }
    name = key.substr(slash + 1);
  }
  if (!IsName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("label key '", key, "': the name must be 1-", kMaxName,
                     " characters of [A-Za-z0-9-_.], starting and ending alphanumeric"));
  }
  return absl::OkStatus();
}

absl::Status CheckLabelValue(absl::string_view value) {
  if (value.empty() || IsName(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("label value '", value, "': at most ", kMaxName,
                   " characters of [A-Za-z0-9-_.], starting and ending alphanumeric"));
}

absl::StatusOr<std::pair<std::string, std::string>> ParseLabel(absl::string_view text) {
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("label '", text, "': expected KEY=VALUE"));
  }
  absl::string_view key = text.substr(0, eq);
  absl::string_view value = text.substr(eq + 1);
  if (absl::Status s = CheckLabelKey(key); !s.ok()) return s;
  if (absl::Status s = CheckLabelValue(value); !s.ok()) return s;
  return std::make_pair(std::string(key), std::string(value));
}

bool LabelsMatch(const Labels& labels, const Labels& select) {
  for (const auto& [key, value] : select) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

std::string FormatLabels(const Labels& labels) {
  return absl::StrJoin(labels, ",", absl::PairFormatter("="));
}

}  // namespace synq::common
