#include "controller/orchestrator.h"

#include <algorithm>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/process_cpu.h"
#include "controller/result/run_builder.h"
#include "controller/run/phases.h"

namespace synq::controller {
namespace {

bool HasCapability(const v1::HostInfo& info, v1::Capability c) {
  return std::find(info.capabilities().begin(), info.capabilities().end(), c) !=
         info.capabilities().end();
}

std::string MissingReason(const v1::HostInfo& info, v1::Capability c) {
  for (const auto& m : info.missing_capabilities()) {
    if (m.capability() == c) return m.reason();
  }
  return "not reported by the agent";
}

}  // namespace

synq::result::v1::Run Orchestrator::Run(const RunPlan& plan, int index,
                                        std::vector<RunFailure>* failures) {
  RunContext ctx(plan, index, hosts_, options_);
  const Clock::time_point began = options_.now();
  // Controller wall time and CPU time per phase (Run.phase_ms, Run.phase_cpu_ms): what fanning
  // out to this many agents cost.
  auto in_ms = [](std::chrono::nanoseconds d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  std::map<std::string, double> phase_ms, phase_cpu_ms;
  Clock::time_point mark = began;
  std::chrono::nanoseconds cpu_mark = common::ProcessCpuTime();
  auto lap = [&](const char* phase) {
    const Clock::time_point now = options_.now();
    const std::chrono::nanoseconds cpu = common::ProcessCpuTime();
    phase_ms[phase] = in_ms(now - mark);
    phase_cpu_ms[phase] = in_ms(cpu - cpu_mark);
    mark = now;
    cpu_mark = cpu;
  };
  BeginPhase(ctx);
  PreparePhase(ctx);
  lap("prepare");
  SchedulePhase(ctx);
  lap("start");
  CollectPhase(ctx);
  lap("collect");
  EndPhase(ctx);
  lap("end");
  ctx.inputs.duration = options_.now() - began;
  synq::result::v1::Run run = result::BuildRun(ctx.inputs);
  run.mutable_phase_ms()->insert(phase_ms.begin(), phase_ms.end());
  run.mutable_phase_cpu_ms()->insert(phase_cpu_ms.begin(), phase_cpu_ms.end());
  // Connecting happens once per invocation, before the first run: it is reported there.
  if (index == 0 && options_.connect_duration) {
    (*run.mutable_phase_ms())["connect"] = in_ms(*options_.connect_duration);
  }
  if (index == 0 && options_.connect_cpu) {
    (*run.mutable_phase_cpu_ms())["connect"] = in_ms(*options_.connect_cpu);
  }
  // A flood that measured nothing fails its host (exit 3) unless the scenario expects it.
  for (RunFailure& f : FloodsThatOnlyFailed(plan.scenario, run)) {
    run.add_errors(absl::StrCat(f.host, ": ", f.message));
    ctx.failures.push_back(std::move(f));
  }
  failures->insert(failures->end(), ctx.failures.begin(), ctx.failures.end());
  return run;
}

std::vector<RunFailure> Orchestrator::CheckCapabilities(const Scenario& scenario) const {
  std::vector<RunFailure> problems;
  for (const auto& h : hosts_) {
    if (scenario.settings.contains(h.name) && !HasCapability(h.info, v1::CAPABILITY_SYSCTL_WRITE)) {
      problems.push_back(
          {h.name, absl::StrCat("cannot change kernel settings: ",
                                MissingReason(h.info, v1::CAPABILITY_SYSCTL_WRITE))});
    }
    // An agent from 0.6 on names its flood engine (epoll where io_uring is refused).
    if (!HasCapability(h.info, v1::CAPABILITY_IO_URING) && h.info.flood_engine().empty()) {
      for (const auto& f : scenario.floods) {
        if (f.host == h.name) {
          problems.push_back(
              {h.name, absl::StrCat("cannot flood: io_uring unavailable: ",
                                    MissingReason(h.info, v1::CAPABILITY_IO_URING))});
          break;
        }
      }
    }
  }
  for (const auto& s : scenario.shaping) {
    const HostHandle* h = nullptr;
    for (const auto& candidate : hosts_) {
      if (candidate.name == s.host) h = &candidate;
    }
    if (h == nullptr) continue;
    const bool netem = HasCapability(h->info, v1::CAPABILITY_NETEM);
    const bool nfqueue = HasCapability(h->info, v1::CAPABILITY_NFQUEUE);
    if (s.backend == ShapingBackend::kNetem && !netem) {
      problems.push_back({s.host, absl::StrCat("shaping backend netem cannot work here: ",
                                               MissingReason(h->info, v1::CAPABILITY_NETEM))});
    } else if (s.backend == ShapingBackend::kNfqueue && !nfqueue) {
      problems.push_back({s.host, absl::StrCat("shaping backend nfqueue cannot work here: ",
                                               MissingReason(h->info, v1::CAPABILITY_NFQUEUE))});
    } else if (s.backend == ShapingBackend::kAuto && !netem && !nfqueue) {
      problems.push_back(
          {s.host, absl::StrCat("no shaping backend works here: netem: ",
                                MissingReason(h->info, v1::CAPABILITY_NETEM),
                                "; nfqueue: ", MissingReason(h->info, v1::CAPABILITY_NFQUEUE))});
    }
    if (h->interface.empty()) {
      problems.push_back(
          {s.host, "shaping needs the host's interface: set hosts." + s.host + ".interface"});
    }
  }
  return problems;
}

}  // namespace synq::controller
