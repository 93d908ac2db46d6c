// Scenario values parsed at the edge: integers, numbers, booleans, durations, rates, percents
// and the mode names, each from one YAML scalar, each error saying what is accepted.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/modes.h"
#include "common/shared_text.h"

namespace synq::controller {

// "100ms", "2s", "1.5s", "250us", "0" -> duration, at most 24h (common::kMaxDuration). Error
// text says what is accepted.
absl::StatusOr<std::chrono::nanoseconds> ParseDuration(const std::string& text);

namespace scenario {

inline constexpr double kMaxRateBits = 1e15;  // 1 Pbit/s

// A YAML scalar as the field parsers see it. `quoted` separates `port: "80"` (a string, so
// the wrong type for an integer field) from `port: 80`.
struct Scalar {
  std::string text;
  bool quoted = false;
};

// One scenario field's value after parsing: the type of the struct member it is stored in.
using FieldValue =
    std::variant<int64_t, uint64_t, double, bool, std::string, std::chrono::nanoseconds,
                 common::AcceptMode, common::ShapingBackend, common::CloseMode,
                 common::SharedText>;

absl::Status Invalid(absl::string_view message);  // InvalidArgumentError
std::string Quote(absl::string_view text);        // 'text'

// An unquoted integer in [min, max].
absl::StatusOr<int64_t> ParseInt(const Scalar& s, int64_t min, int64_t max);
// An unquoted finite number in [min, max]; must start with a digit, a sign or a dot.
absl::StatusOr<double> ParseNumber(const Scalar& s, double min, double max);
// Text that starts like a number (sign, digit or dot), so "inf" and "nan" are not numbers.
bool LooksNumeric(absl::string_view text);
// true/True/TRUE and false/False/FALSE; nothing else.
std::optional<bool> BoolFromText(absl::string_view text);
absl::StatusOr<bool> ParseBool(const Scalar& s);
// A duration (see ParseDuration); 0 only when `allow_zero`.
absl::StatusOr<std::chrono::nanoseconds> ParseDurationAtLeast(const Scalar& s, bool allow_zero);
// A duration in [min, max] (min 0 allows 0); the error gives the bound as written ("1h").
absl::StatusOr<std::chrono::nanoseconds> ParseDurationIn(const Scalar& s,
                                                         std::chrono::nanoseconds min,
                                                         std::chrono::nanoseconds max);
// A duration as the bounds are written in errors and docs: "24h", "1h", "1min", "1ms", "250us".
std::string DurationText(std::chrono::nanoseconds d);
absl::StatusOr<std::string> ParseNonEmpty(const Scalar& s);
// tc-style rates: "10mbit", "1gbit", "500kbit", "64000bit" or a bare number of bits/s.
absl::StatusOr<uint64_t> ParseRate(const Scalar& s);
// "10%", "10" or "2.5%" -> 10 / 2.5 (percent, at least 0).
absl::StatusOr<double> ParsePercent(const Scalar& s);
// never | paced | immediate.
absl::StatusOr<common::AcceptMode> ParseAcceptMode(const Scalar& s);
// keep | rst | fin.
absl::StatusOr<common::CloseMode> ParseCloseMode(const Scalar& s);
// auto | netem | nfqueue.
absl::StatusOr<common::ShapingBackend> ParseShapingBackend(const Scalar& s);

}  // namespace scenario
}  // namespace synq::controller
