#include "controller/scenario/sweep_value_proto.h"

#include <string>
#include <type_traits>
#include <variant>

namespace synq::controller {

google::protobuf::Value SweepValueToProto(const SweepValue& value) {
  google::protobuf::Value out;
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          out.set_bool_value(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          out.set_string_value(v);
        } else {
          out.set_number_value(static_cast<double>(v));
        }
      },
      value.value());
  return out;
}

}  // namespace synq::controller
