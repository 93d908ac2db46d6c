// The report's per-second chart of a sustained flood (inline SVG, no network): scheduled rate,
// launched, established and failed (timed out + reset + refused + errors) per second, dropped
// launches, and p99 connect latency below on the same time axis, with the first second that
// had failures marked, so where a target starts to overflow is visible.
#pragma once

#include <string>

#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

// Empty when the flood has no per-second series.
std::string FloodSeriesChart(const std::string& name, const synq::result::v1::Flood& flood);

}  // namespace synq::controller::result
