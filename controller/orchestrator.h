// Drives every agent of a scenario through one run (the phases in controller/run/) and returns
// the run's typed result.
#pragma once

#include <vector>

#include "controller/run/run_context.h"
#include "controller/scenario.h"
#include "synq/result/v1/result.pb.h"

namespace synq::controller {

class Orchestrator {
 public:
  Orchestrator(std::vector<HostHandle>& hosts, RunOptions options)
      : hosts_(hosts), options_(std::move(options)) {}

  // Runs one plan end to end: Begin, Prepare, Schedule, Collect, End, then builds the result.
  // Every agent's run is ended (settings restored) even on failure; the result is returned also
  // on failure, with `errors` set and whatever did arrive kept. Failures are appended.
  synq::result::v1::Run Run(const RunPlan& plan, int index, std::vector<RunFailure>* failures);

  // Checks that what the scenario asks for can work on these hosts (shaping backends, settings
  // without root). Errors name the host and the reason.
  std::vector<RunFailure> CheckCapabilities(const Scenario& scenario) const;

 private:
  std::vector<HostHandle>& hosts_;
  RunOptions options_;
};

}  // namespace synq::controller
