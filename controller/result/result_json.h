// result.json <-> the typed result (proto/synq/result/v1/result.proto), through protobuf's JSON
// printer and parser. Nothing else reads or writes result.json.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

namespace v1 = ::synq::result::v1;

// The result as result.json text: field names as in the proto, zero counts written, two-space
// indentation.
std::string ToJson(const v1::Result& result);

// Parses result.json text; unknown fields are an error naming them (a file from a newer synq).
absl::StatusOr<v1::Result> FromJson(const std::string& text);

// Writes `path` (creating its folder) / reads it; errors name the file.
absl::Status WriteResultFile(const v1::Result& result, const std::string& path);
absl::StatusOr<v1::Result> ReadResultFile(const std::string& path);

}  // namespace synq::controller::result
