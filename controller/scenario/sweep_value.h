// One value of a sweep axis, typed once from its YAML scalar: the run's param as written.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace synq::controller {

// A typed sweep value. The loader types each YAML scalar once (SweepValue::FromYaml): quoted ->
// string, else integer, boolean, finite number, string (in that order). Downstream code reads
// the typed value (value(), kind(), AsNumber()) and never parses Text().
class SweepValue {
 public:
  using Value = std::variant<int64_t, double, bool, std::string>;
  enum class Kind { kInt, kDouble, kString, kBool };

  SweepValue() = default;  // the empty string
  explicit SweepValue(Value value) : value_(std::move(value)) {}
  static SweepValue Int(int64_t v) { return SweepValue(Value(v)); }
  static SweepValue Double(double v) { return SweepValue(Value(v)); }
  static SweepValue Bool(bool v) { return SweepValue(Value(v)); }
  static SweepValue String(std::string v) { return SweepValue(Value(std::move(v))); }
  // Types a YAML scalar: `quoted` (the file wrote "...") -> string; else an integer ("-1"),
  // a boolean (true/True/TRUE, false/...), a finite number ("2.5", "1e3") or else a string.
  static SweepValue FromYaml(const std::string& text, bool quoted);

  // The typed value; use std::visit or std::get_if. google.protobuf.Value: an int or double
  // is number_value (AsNumber()), a bool is bool_value, a string is string_value.
  const Value& value() const { return value_; }
  Kind kind() const;
  bool is_number() const { return kind() == Kind::kInt || kind() == Kind::kDouble; }
  // The number for kInt and kDouble (an int64 as double); 0 for bool and string.
  double AsNumber() const;

  // For display: "4", "2.5" (shortest form that reads back the same double), "true", "paced".
  std::string Text() const;
  // For error messages: Text(), with strings in single quotes ("'paced'", "4").
  std::string Describe() const;

  bool operator==(const SweepValue&) const = default;

 private:
  Value value_{std::string()};
};

}  // namespace synq::controller
