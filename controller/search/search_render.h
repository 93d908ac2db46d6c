// The knee search as the terminal table and the HTML report show it, rendered from the typed
// result (Run.search).
#pragma once

#include <string>

#include "synq/result/v1/result.pb.h"

namespace synq::controller::search {

// A block for the terminal: the knee (or why there is none), the model's prediction and error
// (or why there is none), and one row per trial: phase, rate, pass/fail, outcomes, server drops,
// loss and the reason. "" when the run has no search.
std::string RenderSearchTable(const synq::result::v1::Run& run);

// An HTML section: the knee and the model in words, a chart of every trial's rate in order
// (passes and failures marked, the knee and the prediction as lines) and the trials' table.
// Every text is escaped. "" when the run has no search.
std::string RenderSearchHtml(const synq::result::v1::Run& run);

}  // namespace synq::controller::search
