// Fuzzes the scenario loader: any bytes as YAML text must give a scenario or errors, never a
// crash, a leak, undefined behaviour or an exception; a scenario that loads must expand into its
// runs, each holding the bounds of common/limits.h.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/limits.h"
#include "controller/scenario_loader.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synq;
  const std::string text(reinterpret_cast<const char*>(data), size);
  controller::LoadResult result = controller::LoadScenario(text);
  if (!result.ok()) return 0;
  const controller::Scenario& s = result.scenario;
  // Expanding a large sweep is the loader's own work again; keep each input fast.
  if (controller::scenario::CountRuns(s.sweep) > 64) return 0;
  absl::StatusOr<std::vector<controller::RunPlan>> plans = controller::ExpandSweep(s);
  Check(plans.ok());  // the loader already judged every combination
  for (const controller::RunPlan& plan : *plans) {
    Check(plan.scenario.sample_interval >= common::kMinSampleInterval);
    Check(plan.scenario.sample_interval <= common::kMaxDuration);
    for (const controller::FloodDef& f : plan.scenario.floods) {
      Check(f.payload.size() <= common::kMaxPayloadBytes);
      Check(f.connect_timeout <= common::kMaxConnectTimeout);
      Check(f.hold <= common::kMaxDuration && f.duration <= common::kMaxDuration);
      Check(f.connections <= common::kMaxConnections);
    }
  }
  return 0;
}
