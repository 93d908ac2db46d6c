#include "controller/result/format.h"

#include <cmath>
#include <map>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace synq::controller::result {

std::string FormatNumber(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrFormat("%.0f", v);
  }
  std::string s = absl::StrFormat("%.3f", v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string FormatParamValue(const google::protobuf::Value& v) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      return FormatNumber(v.number_value());
    case google::protobuf::Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    case google::protobuf::Value::kStringValue:
      return v.string_value();
    case google::protobuf::Value::kNullValue:
      return "null";
    default:
      return "?";
  }
}

std::string ParamsText(const synq::result::v1::Run& run, absl::string_view separator) {
  std::map<std::string, std::string> sorted;
  for (const auto& [path, value] : run.params()) sorted[path] = FormatParamValue(value);
  return absl::StrJoin(sorted, separator, absl::PairFormatter("="));
}

}  // namespace synq::controller::result
