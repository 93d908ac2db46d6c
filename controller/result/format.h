// How every renderer writes numbers and sweep params, so that one value reads the same in the
// table, the diagnosis, expectations, baselines, JUnit and the report.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

namespace v1 = ::synq::result::v1;

// Integers exactly ("17"), other values with at most three decimals, trailing zeros dropped
// ("0.036", "1000.2").
std::string FormatNumber(double v);

// A sweep value as written in the scenario: "16", "0.5", "true", "paced".
std::string FormatParamValue(const google::protobuf::Value& v);

// "path=value" for every param, sorted by path, joined by `separator`; "" without params.
std::string ParamsText(const synq::result::v1::Run& run, absl::string_view separator);

}  // namespace synq::controller::result
