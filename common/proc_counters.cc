#include "common/proc_counters.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace synq::common {
namespace {

// Debian's Abseil has its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), so parsing
// works on absl::string_view throughout.
struct Line {
  absl::string_view prefix;  // "TcpExt"
  std::vector<absl::string_view> fields;
};

// Splits "Prefix: a b c" into its prefix and fields; false when the line has no "Prefix:".
bool SplitLine(absl::string_view text, Line* out) {
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  out->prefix = text.substr(0, colon);
  out->fields = absl::StrSplit(text.substr(colon + 1), ' ', absl::SkipWhitespace());
  return true;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat("error reading ", path));
  return text.str();
}

}  // namespace

absl::StatusOr<Counters> ParseProcNetCounters(std::string_view std_text) {
  const absl::string_view text(std_text.data(), std_text.size());
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  Counters out;
  for (size_t i = 0; i < lines.size(); i += 2) {
    Line header;
    if (!SplitLine(lines[i], &header)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", i + 1, " is not 'Prefix: names...': '", lines[i], "'"));
    }
    Line values;
    // The kernel always prints the value line right after its header with the same prefix.
    if (i + 1 >= lines.size() || !SplitLine(lines[i + 1], &values) ||
        values.prefix != header.prefix) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", header.prefix, ":' header has no value line"));
    }
    if (values.fields.size() != header.fields.size()) {
      return absl::InvalidArgumentError(absl::StrCat("'", header.prefix, ":' has ",
                                                     header.fields.size(), " names but ",
                                                     values.fields.size(), " values"));
    }
    for (size_t f = 0; f < header.fields.size(); ++f) {
      int64_t value = 0;
      uint64_t unsigned_value = 0;
      // Most counters are unsigned longs: one past INT64_MAX wraps, as a delta across it must.
      if (absl::SimpleAtoi(values.fields[f], &unsigned_value)) {
        value = static_cast<int64_t>(unsigned_value);
      } else if (!absl::SimpleAtoi(values.fields[f], &value)) {
        return absl::InvalidArgumentError(absl::StrCat("'", header.prefix, ":' value '",
                                                       values.fields[f], "' of '", header.fields[f],
                                                       "' is not a number"));
      }
      out[absl::StrCat(header.prefix, header.fields[f])] = value;
    }
  }
  return out;
}

absl::StatusOr<Counters> ReadKernelCounters(const std::string& proc_dir) {
  Counters merged;
  for (const char* file : {"/net/netstat", "/net/snmp"}) {
    const std::string path = absl::StrCat(proc_dir, file);
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) return text.status();
    absl::StatusOr<Counters> parsed = ParseProcNetCounters(*text);
    if (!parsed.ok()) {
      return absl::Status(parsed.status().code(),
                          absl::StrCat(path, ": ", parsed.status().message()));
    }
    merged.merge(*parsed);
  }
  return merged;
}

Counters CounterDeltas(const Counters& before, const Counters& after) {
  Counters out;
  // Unsigned arithmetic: a counter that wrapped still gives the right small delta.
  for (const auto& [name, value] : before) {
    out[name] = static_cast<int64_t>(0 - static_cast<uint64_t>(value));
  }
  for (const auto& [name, value] : after) {
    out[name] =
        static_cast<int64_t>(static_cast<uint64_t>(out[name]) + static_cast<uint64_t>(value));
  }
  return out;
}

Counters NonZero(const Counters& counters) {
  Counters out;
  for (const auto& [name, value] : counters) {
    if (value != 0) out.emplace(name, value);
  }
  return out;
}

}  // namespace synq::common
