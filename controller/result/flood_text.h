// The terminal lines of a sustained flood under its table row: the schedule asked for, what
// the generator managed (loudly when it fell behind), and a compact per-second series that marks
// the first second with failures (the knee).
#pragma once

#include <string>

#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

// Floods longer than this many seconds print their per-second series.
inline constexpr int kSeriesMinSeconds = 3;
// At most this many series lines; longer floods are grouped a few seconds per line.
inline constexpr int kSeriesMaxLines = 30;

// Empty for a flood without sustained fields (an agent before 0.4, a plain burst).
std::string SustainedFloodText(const synq::result::v1::Flood& flood);

}  // namespace synq::controller::result
