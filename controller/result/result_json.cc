#include "controller/result/result_json.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace synq::controller::result {

std::string ToJson(const v1::Result& result) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  // Printing a well-formed message cannot fail; the status only reports invalid UTF-8 in strings,
  // which protobuf has already rejected when the strings were set.
  (void)google::protobuf::util::MessageToJsonString(result, &out, options);
  return out;
}

absl::StatusOr<v1::Result> FromJson(const std::string& text) {
  v1::Result result;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(text, &result, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a synq result: ", std::string(status.message())));
  }
  return result;
}

absl::Status WriteResultFile(const v1::Result& result, const std::string& path) {
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  std::ofstream out(path);
  out << ToJson(result);
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<v1::Result> ReadResultFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the file"));
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = FromJson(text.str());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

}  // namespace synq::controller::result
