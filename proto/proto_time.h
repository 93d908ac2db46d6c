// std::chrono <-> google.protobuf.Duration / Timestamp, for both agent and controller.
#pragma once

#include <chrono>

#include "common/saturating.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace synq::proto {

// Saturates at the ends of int64 nanoseconds (a Duration holds up to 10,000 years, nanoseconds
// 292): whoever reads the value bounds it and names the field.
inline std::chrono::nanoseconds FromProto(const google::protobuf::Duration& d) {
  return common::SaturatingFromParts(d.seconds(), d.nanos());
}

inline void ToProto(std::chrono::nanoseconds d, google::protobuf::Duration* out) {
  out->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(d).count());
  out->set_nanos(static_cast<int32_t>((d % std::chrono::seconds(1)).count()));
}

// Saturates like FromProto(Duration) (system_clock counts nanoseconds here).
inline std::chrono::system_clock::time_point FromProto(const google::protobuf::Timestamp& t) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          common::SaturatingFromParts(t.seconds(), t.nanos())));
}

inline void ToProto(std::chrono::system_clock::time_point t, google::protobuf::Timestamp* out) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  out->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(ns).count());
  out->set_nanos(static_cast<int32_t>((ns % std::chrono::seconds(1)).count()));
}

}  // namespace synq::proto
