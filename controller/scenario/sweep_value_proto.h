// A typed sweep value as google.protobuf.Value, for the result's `params` map
// (synq.result.v1, map<string, google.protobuf.Value>).
#pragma once

#include <google/protobuf/struct.pb.h>

#include "controller/scenario/sweep_value.h"

namespace synq::controller {

// An int or double -> number_value (an int64 as a double), a bool -> bool_value, a string ->
// string_value. No text is parsed: the value was typed by the loader.
google::protobuf::Value SweepValueToProto(const SweepValue& value);

}  // namespace synq::controller
