// std::chrono <-> google.protobuf.Duration / Timestamp, for both agent and controller.
#pragma once

#include <chrono>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace synq::proto {

inline std::chrono::nanoseconds FromProto(const google::protobuf::Duration& d) {
  return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

inline void ToProto(std::chrono::nanoseconds d, google::protobuf::Duration* out) {
  out->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(d).count());
  out->set_nanos(static_cast<int32_t>((d % std::chrono::seconds(1)).count()));
}

inline std::chrono::system_clock::time_point FromProto(const google::protobuf::Timestamp& t) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
}

inline void ToProto(std::chrono::system_clock::time_point t, google::protobuf::Timestamp* out) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  out->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(ns).count());
  out->set_nanos(static_cast<int32_t>((ns % std::chrono::seconds(1)).count()));
}

}  // namespace synq::proto
