// Renders result.json as the terminal table that `synq run` prints.
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace synq::controller {

// One block per run: its params, then a row per flood (outcomes, fates, latency), a row per
// listener (backlog, effective, accepted, peak), and the handshake counters that moved.
std::string RenderTable(const nlohmann::json& result);

}  // namespace synq::controller
