#include "controller/scenario/flood_checks.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "controller/scenario/paths.h"
#include "controller/scenario/values.h"

namespace synq::controller::scenario {

std::vector<CrossError> CheckFloodSchedule(const Scenario& s, size_t index) {
  using Kind = FieldRef::Kind;
  std::vector<CrossError> out;
  const FloodDef& f = s.floods[index];
  const std::string path = ItemPath("floods", s.floods, index);
  auto ref = [index](const char* field) { return FieldRef{Kind::kFlood, index, "", field}; };
  const std::vector<FieldRef> rate_refs = {ref("rate"), ref("rate.from"), ref("rate.to"),
                                           ref("rate.over"), ref("rate.each")};

  if (f.connections <= 0 && f.duration.count() <= 0) {
    out.push_back({{path, "needs connections or duration (or both: whichever ends first)"},
                   {ref("connections"), ref("duration")}});
  }
  if (f.close == CloseMode::kKeep && f.connections <= 0 && f.duration.count() > 0 &&
      f.rate_kind == RateKind::kConstant && f.rate <= 0) {
    out.push_back({{JoinPath(path, "connections"),
                    "needed with close: keep at rate 0: every connection is held, so the count "
                    "needs a bound (or give a rate, or close: rst or fin)"},
                   {ref("connections"), ref("close"), ref("rate"), ref("duration")}});
  }
  if (f.lifetime.count() > 0 && f.close == CloseMode::kKeep) {
    out.push_back({{JoinPath(path, "lifetime"),
                    "only with close: rst or fin (close: keep holds connections to the end of "
                    "the run)"},
                   {ref("lifetime"), ref("close")}});
  }
  if (f.rate_kind == RateKind::kRamp) {
    if (f.ramp_over.count() <= 0) {
      out.push_back({{JoinPath(path, "rate.over"), "a ramp needs over > 0"}, rate_refs});
    }
    if (f.ramp_from <= 0 && f.ramp_to <= 0) {
      out.push_back(
          {{JoinPath(path, "rate"), "a ramp from 0/s to 0/s launches nothing"}, rate_refs});
    }
  }
  if (f.rate_kind == RateKind::kSteps) {
    if (f.steps.empty()) {
      out.push_back({{JoinPath(path, "rate.steps"), "steps need at least one rate"}, rate_refs});
    }
    if (f.steps_each.count() <= 0) {
      out.push_back({{JoinPath(path, "rate.each"), "steps need each > 0"}, rate_refs});
    }
  }
  if (f.threads > 0 && f.threads > f.concurrency) {
    out.push_back(
        {{JoinPath(path, "threads"),
          absl::StrCat(f.threads, " threads need a concurrency of at least ", f.threads, ", got ",
                       f.concurrency, " (each thread keeps at least one socket in flight)")},
         {ref("threads"), ref("concurrency")}});
  }
  if (f.source_count > 0) {
    const HostSpec* host = s.FindHost(f.host);
    if (host != nullptr && host->embedded() && f.source_count > host->addresses) {
      out.push_back({{JoinPath(path, "sources"),
                      absl::StrCat(f.source_count, " addresses asked, host ", Quote(f.host),
                                   " has ", host->addresses, " (set hosts.", f.host,
                                   ".addresses: ", f.source_count, ")")},
                     {ref("sources")}});
    }
  }
  return out;
}

}  // namespace synq::controller::scenario
