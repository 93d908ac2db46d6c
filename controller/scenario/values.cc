#include "controller/scenario/values.h"

#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/limits.h"

namespace synq::controller {

using std::chrono::nanoseconds;

namespace scenario {

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

std::string Quote(absl::string_view text) { return absl::StrCat("'", text, "'"); }

absl::StatusOr<int64_t> ParseInt(const Scalar& s, int64_t min, int64_t max) {
  int64_t value = 0;
  if (s.quoted || !absl::SimpleAtoi(s.text, &value)) {
    return Invalid(
        absl::StrCat("expected an integer, got ", s.quoted ? "the string " : "", Quote(s.text)));
  }
  if (value < min || value > max) {
    if (max == std::numeric_limits<int64_t>::max()) {
      return Invalid(absl::StrCat("must be at least ", min, ", got ", value));
    }
    return Invalid(absl::StrCat("must be between ", min, " and ", max, ", got ", value));
  }
  return value;
}

bool LooksNumeric(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  return !text.empty() && (absl::ascii_isdigit(text.front()) || text.front() == '.');
}

absl::StatusOr<double> ParseNumber(const Scalar& s, double min, double max) {
  double value = 0;
  if (s.quoted || !LooksNumeric(s.text) || !absl::SimpleAtod(s.text, &value) ||
      !std::isfinite(value)) {
    return Invalid(
        absl::StrCat("expected a number, got ", s.quoted ? "the string " : "", Quote(s.text)));
  }
  if (value < min || value > max) {
    if (max == std::numeric_limits<double>::max()) {
      return Invalid(absl::StrCat("must be at least ", min, ", got ", s.text));
    }
    return Invalid(absl::StrCat("must be between ", min, " and ", max, ", got ", s.text));
  }
  return value;
}

std::optional<bool> BoolFromText(absl::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return std::nullopt;
}

absl::StatusOr<bool> ParseBool(const Scalar& s) {
  const std::optional<bool> value = s.quoted ? std::nullopt : BoolFromText(s.text);
  if (!value) {
    return Invalid(absl::StrCat("expected a boolean (true or false), got ",
                                s.quoted ? "the string " : "", Quote(s.text)));
  }
  return *value;
}

absl::StatusOr<nanoseconds> ParseDurationAtLeast(const Scalar& s, bool allow_zero) {
  absl::StatusOr<nanoseconds> d = ParseDuration(s.text);
  if (!d.ok()) return d;
  if (!allow_zero && d->count() == 0) {
    return Invalid(absl::StrCat("must be greater than 0, got ", Quote(s.text)));
  }
  return d;
}

absl::StatusOr<nanoseconds> ParseDurationIn(const Scalar& s, nanoseconds min, nanoseconds max) {
  absl::StatusOr<nanoseconds> d = ParseDurationAtLeast(s, min.count() == 0);
  if (!d.ok()) return d;
  if (*d < min || *d > max) {
    return Invalid(absl::StrCat("must be between ", DurationText(min), " and ", DurationText(max),
                                ", got ", Quote(s.text)));
  }
  return d;
}

std::string DurationText(nanoseconds d) {
  using std::chrono::hours;
  using std::chrono::microseconds;
  using std::chrono::milliseconds;
  using std::chrono::minutes;
  using std::chrono::seconds;
  if (d.count() == 0) return "0";
  if (d % hours(1) == nanoseconds(0)) return absl::StrCat(d / hours(1), "h");
  if (d % minutes(1) == nanoseconds(0)) return absl::StrCat(d / minutes(1), "min");
  if (d % seconds(1) == nanoseconds(0)) return absl::StrCat(d / seconds(1), "s");
  if (d % milliseconds(1) == nanoseconds(0)) return absl::StrCat(d / milliseconds(1), "ms");
  if (d % microseconds(1) == nanoseconds(0)) return absl::StrCat(d / microseconds(1), "us");
  return absl::StrCat(d.count(), "ns");
}

absl::StatusOr<std::string> ParseNonEmpty(const Scalar& s) {
  if (s.text.empty()) return Invalid("must not be empty");
  return s.text;
}

absl::StatusOr<uint64_t> ParseRate(const Scalar& s) {
  const std::string text = absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.text));
  static constexpr std::array<std::pair<absl::string_view, double>, 5> kUnits = {
      {{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}};
  absl::string_view number = text;
  double scale = 1;
  for (const auto& [suffix, factor] : kUnits) {
    if (absl::EndsWith(text, suffix)) {
      number = absl::string_view(text).substr(0, text.size() - suffix.size());
      scale = factor;
      break;
    }
  }
  double value = 0;
  if (number.empty() || !absl::ascii_isdigit(number.front()) || !absl::SimpleAtod(number, &value) ||
      !std::isfinite(value)) {
    return Invalid(absl::StrCat("expected a rate in bits/s like 10mbit, 1gbit or a number, got ",
                                Quote(s.text)));
  }
  value *= scale;
  if (value > kMaxRateBits) return Invalid(absl::StrCat("rate ", Quote(s.text), " is too large"));
  return static_cast<uint64_t>(std::llround(value));
}

absl::StatusOr<double> ParsePercent(const Scalar& s) {
  absl::string_view text = absl::StripAsciiWhitespace(s.text);
  if (absl::EndsWith(text, "%")) text.remove_suffix(1);
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !(v >= 0) || v > 1e6) {
    return Invalid(absl::StrCat("expected a tolerance in percent like '10%', got ", Quote(s.text)));
  }
  return v;
}

absl::StatusOr<common::AcceptMode> ParseAcceptMode(const Scalar& s) {
  if (s.text == "never") return common::AcceptMode::kNever;
  if (s.text == "paced") return common::AcceptMode::kPaced;
  if (s.text == "immediate") return common::AcceptMode::kImmediate;
  return Invalid(absl::StrCat("expected one of never, paced, immediate, got ", Quote(s.text)));
}

absl::StatusOr<common::CloseMode> ParseCloseMode(const Scalar& s) {
  if (s.text == "keep") return common::CloseMode::kKeep;
  if (s.text == "rst") return common::CloseMode::kRst;
  if (s.text == "fin") return common::CloseMode::kFin;
  return Invalid(absl::StrCat("expected one of keep, rst, fin, got ", Quote(s.text)));
}

absl::StatusOr<common::ShapingBackend> ParseShapingBackend(const Scalar& s) {
  if (s.text == "auto") return common::ShapingBackend::kAuto;
  if (s.text == "netem") return common::ShapingBackend::kNetem;
  if (s.text == "nfqueue") return common::ShapingBackend::kNfqueue;
  return Invalid(absl::StrCat("expected one of auto, netem, nfqueue, got ", Quote(s.text)));
}

}  // namespace scenario

absl::StatusOr<nanoseconds> ParseDuration(const std::string& text) {
  using scenario::Invalid;
  using scenario::Quote;
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  const absl::string_view usage = "expected a duration like 100ms, 2s, 1.5s or 250us";
  if (rest.empty()) return Invalid(absl::StrCat("empty duration; ", usage));
  if (rest.front() == '-') return Invalid(absl::StrCat("negative duration ", Quote(text)));
  size_t digits = 0;
  while (digits < rest.size() && (absl::ascii_isdigit(rest[digits]) || rest[digits] == '.')) {
    ++digits;
  }
  const absl::string_view number = rest.substr(0, digits);
  const absl::string_view unit = rest.substr(digits);
  const size_t dot = number.find('.');
  const bool well_formed =
      !number.empty() && number.front() != '.' && number.back() != '.' &&
      (dot == absl::string_view::npos || number.find('.', dot + 1) == absl::string_view::npos);
  double value = 0;
  if (!well_formed || !absl::SimpleAtod(number, &value)) {
    return Invalid(absl::StrCat(Quote(text), ": ", usage));
  }
  double scale = 0;
  if (unit.empty()) {
    if (value == 0) return nanoseconds(0);
    return Invalid(absl::StrCat(Quote(text), " needs a unit: ms, s or us"));
  } else if (unit == "s") {
    scale = 1e9;
  } else if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "us") {
    scale = 1e3;
  } else {
    return Invalid(absl::StrCat(Quote(text), ": unknown unit ", Quote(unit), "; use ms, s or us"));
  }
  const double ns = value * scale;
  if (!(ns <= static_cast<double>(common::kMaxDuration.count()))) {
    return Invalid(absl::StrCat(Quote(text), " is too long: at most ",
                                scenario::DurationText(common::kMaxDuration)));
  }
  return nanoseconds(std::llround(ns));
}

}  // namespace synq::controller
