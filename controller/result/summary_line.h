// One line per run for logs (`kubectl logs job/...`, CI output): scenario, run, verdict and the key
// figures, `key=value` separated by spaces so grep and log pipelines can pick fields.
#pragma once

#include <string>

#include "synq/result/v1/result.pb.h"

namespace synq::controller::result {

// "synq-summary scenario=S run=1/2 params=k=v,... verdict=pass|FAIL(expectations,regression,errors)
//  [baseline=compared|unmatched] duration_ms=N [skew_ms=X]
//  flood.F=attempted/established/refused/reset/timed_out [flood.F.p99_ms=X] ...
//  [listener.L.backlog=B] listener.L.accepted=A listener.L.peak=P ...". Figures that were not
// measured are left out, never printed as 0.
std::string RenderSummaryLine(const ::synq::result::v1::Result& result,
                              const ::synq::result::v1::Run& run);

}  // namespace synq::controller::result
