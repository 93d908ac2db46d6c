#include "controller/search/trial.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/result/format.h"

namespace synq::controller::search {

namespace rv1 = ::synq::result::v1;
using result::FormatNumber;

int64_t TrialConnections(double rate, std::chrono::nanoseconds trial) {
  const double seconds = std::chrono::duration<double>(trial).count();
  return std::max<int64_t>(1, std::llround(rate * seconds));
}

absl::StatusOr<RunPlan> TrialPlan(const RunPlan& point, const SearchDef& def, double rate) {
  RunPlan plan = point;
  for (FloodDef& f : plan.scenario.floods) {
    if (f.name != def.flood) continue;
    // A steady flood: open-loop launches at `rate` for the trial's window (`duration`), capped
    // at the attempts that window schedules. A ramp or steps written on the flood give way to
    // the constant rate under test; close mode, lifetime and concurrency stay the user's.
    f.rate_kind = RateKind::kConstant;
    f.rate = rate;
    f.duration = def.trial;
    f.connections = TrialConnections(rate, def.trial);
    return plan;
  }
  return absl::InvalidArgumentError(absl::StrCat("search.flood: no flood named '", def.flood, "'"));
}

std::optional<double> ServerDrops(const rv1::Run& run, const rv1::Flood& flood) {
  if (flood.listener().empty()) return std::nullopt;
  auto l = run.listeners().find(flood.listener());
  if (l == run.listeners().end()) return std::nullopt;
  auto h = run.hosts().find(l->second.host());
  if (h == run.hosts().end() || h->second.counters().empty()) return std::nullopt;
  auto counter = [&](const char* name) {
    auto it = h->second.counters().find(name);
    return it == h->second.counters().end() ? 0.0 : it->second;
  };
  return std::max(counter("TcpExtListenDrops"),
                  counter("TcpExtListenOverflows") + counter("TcpExtTCPReqQFullDrop"));
}

rv1::SearchTrial JudgeTrial(const rv1::Run& run, const SearchDef& def, double rate,
                            const std::string& phase) {
  rv1::SearchTrial t;
  t.set_rate(rate);
  t.set_phase(phase);
  t.set_duration_ms(run.duration_ms());
  if (!run.errors().empty()) {
    t.set_passed(false);
    t.set_reason(absl::StrCat("the run failed: ", absl::StrJoin(run.errors(), "; ")));
    return t;
  }
  auto it = run.floods().find(def.flood);
  if (it == run.floods().end()) {
    t.set_passed(false);
    t.set_reason(absl::StrCat("flood ", def.flood, " reported no result"));
    return t;
  }
  const rv1::Flood& f = it->second;
  uint32_t errors = 0;
  for (const auto& [name, n] : f.errors()) errors += n;
  t.set_attempted(f.attempted());
  t.set_established(f.established());
  t.set_reset(f.reset());
  t.set_refused(f.refused());
  t.set_timed_out(f.timed_out());
  t.set_errors(errors);
  t.set_launches_dropped(f.launches_dropped());
  const std::optional<double> drops = ServerDrops(run, f);
  if (drops) t.set_server_drops(*drops);

  const double scheduled = static_cast<double>(TrialConnections(rate, def.trial));
  const double never_launched =
      std::max<double>(f.launches_dropped(), scheduled - static_cast<double>(f.attempted()));
  const double failed = static_cast<double>(f.reset()) + f.refused() + f.timed_out() + errors;
  const double lost = std::max(failed + std::max(0.0, never_launched), drops.value_or(0.0));
  t.set_loss_percent(100 * lost / scheduled);

  std::vector<std::string> why;
  auto add = [&why](const char* what, double n) {
    if (n > 0) why.push_back(absl::StrCat(what, " ", FormatNumber(n)));
  };
  add("reset", f.reset());
  add("refused", f.refused());
  add("timed_out", f.timed_out());
  add("errors", errors);
  add("never launched", std::max(0.0, never_launched));
  add("server drops", drops.value_or(0.0));
  const std::string losses = absl::StrJoin(why, ", ");
  if (def.criterion == SearchCriterion::kNdr) {
    t.set_passed(lost == 0);
    t.set_reason(lost == 0 ? "no loss" : losses);
  } else {
    t.set_passed(t.loss_percent() <= def.loss_percent);
    t.set_reason(absl::StrCat("loss ", FormatNumber(t.loss_percent()), "% ",
                              t.passed() ? "within " : "over ", FormatNumber(def.loss_percent), "%",
                              losses.empty() ? "" : absl::StrCat(" (", losses, ")")));
  }
  return t;
}

}  // namespace synq::controller::search
