#include "controller/scenario/sweep_value.h"

#include <array>
#include <charconv>
#include <cmath>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controller/scenario/values.h"

namespace synq::controller {

SweepValue SweepValue::FromYaml(const std::string& text, bool quoted) {
  if (quoted) return String(text);
  if (int64_t as_int = 0; absl::SimpleAtoi(text, &as_int)) return Int(as_int);
  if (std::optional<bool> as_bool = scenario::BoolFromText(text)) return Bool(*as_bool);
  if (double as_double = 0; scenario::LooksNumeric(text) && absl::SimpleAtod(text, &as_double) &&
                            std::isfinite(as_double)) {
    return Double(as_double);
  }
  return String(text);
}

SweepValue::Kind SweepValue::kind() const {
  if (std::holds_alternative<int64_t>(value_)) return Kind::kInt;
  if (std::holds_alternative<double>(value_)) return Kind::kDouble;
  if (std::holds_alternative<bool>(value_)) return Kind::kBool;
  return Kind::kString;
}

double SweepValue::AsNumber() const {
  if (const int64_t* i = std::get_if<int64_t>(&value_)) return static_cast<double>(*i);
  if (const double* d = std::get_if<double>(&value_)) return *d;
  return 0;
}

std::string SweepValue::Text() const {
  if (const int64_t* i = std::get_if<int64_t>(&value_)) return absl::StrCat(*i);
  if (const bool* b = std::get_if<bool>(&value_)) return *b ? "true" : "false";
  if (const double* d = std::get_if<double>(&value_)) {
    // Shortest text that reads back as the same double: "2.5", not StrCat's 6-digit "%g".
    std::array<char, 64> buffer;
    const std::to_chars_result end =
        std::to_chars(buffer.data(), buffer.data() + buffer.size(), *d);
    return std::string(buffer.data(), end.ptr);
  }
  return std::get<std::string>(value_);
}

std::string SweepValue::Describe() const {
  if (kind() == Kind::kString) return scenario::Quote(Text());
  return Text();
}

}  // namespace synq::controller
