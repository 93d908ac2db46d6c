// The terminal table that `synq run` prints, rendered from the typed result.
#pragma once

#include <string>

#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

// One block per run: its params, start skew (or not_observed), the knee search when there is one
// (controller/search/search_render.h), a row per flood (outcomes, fates,
// latency), a row per listener (backlog, effective, accepted, peak), the handshake counters that
// moved, packet counts, and the run's errors.
std::string RenderTable(const synq::result::v1::Result& result);
std::string RenderRunTable(const synq::result::v1::Run& run);

}  // namespace synq::controller::result
