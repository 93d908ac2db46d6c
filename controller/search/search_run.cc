#include "controller/search/search_run.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "controller/result/format.h"
#include "controller/search/knee_search.h"
#include "controller/search/queue_model.h"
#include "controller/search/trial.h"

namespace synq::controller::search {

namespace rv1 = ::synq::result::v1;
using result::FormatNumber;

KneeBounds BoundsFor(const SearchDef& def) {
  KneeBounds b;
  b.start = def.start;
  b.max = def.max;
  b.precision = def.precision;
  b.precision_is_percent = def.precision_is_percent;
  b.min_rate = 1 / std::chrono::duration<double>(def.trial).count();
  return b;
}

rv1::Run RunSearch(const RunPlan& point, const TrialRunner& run_trial, const SearchHooks& hooks) {
  const SearchDef& def = *point.scenario.search;
  const double trial_seconds = std::chrono::duration<double>(def.trial).count();
  const auto began = hooks.now();
  rv1::Search search;
  search.set_flood(def.flood);
  search.set_criterion(CriterionName(def.criterion));
  if (def.criterion == SearchCriterion::kPdr) search.set_loss_percent(def.loss_percent);
  search.set_trial_ms(trial_seconds * 1000);

  std::optional<rv1::Run> knee_run;  // the highest passing trial's run
  std::optional<rv1::Run> last_run;  // the latest other trial's run
  const KneeBounds bounds = BoundsFor(def);
  const KneeOutcome outcome =
      SearchKnee(bounds, [&](double rate, const std::string& phase) -> TrialVerdict {
        absl::StatusOr<RunPlan> plan = TrialPlan(point, def, rate);
        if (!plan.ok()) return TrialVerdict::kAbort;  // the loader's checks make this unreachable
        rv1::Run run = run_trial(*plan);
        rv1::SearchTrial t = JudgeTrial(run, def, rate, phase);
        if (hooks.on_trial) hooks.on_trial(t);
        *search.add_trials() = std::move(t);
        const bool broken = !run.errors().empty();
        const bool passed = search.trials().rbegin()->passed();
        (passed && !broken ? knee_run : last_run) = std::move(run);
        if (broken) return TrialVerdict::kAbort;
        return passed ? TrialVerdict::kPass : TrialVerdict::kFail;
      });

  rv1::Run out;
  if (knee_run) {
    out = *std::move(knee_run);
    // A later trial that could not run must not vanish from the point's result.
    if (last_run && !last_run->errors().empty()) {
      for (const auto& e : last_run->errors()) {
        out.add_errors(
            absl::StrCat("search trial at ", FormatNumber(outcome.steps.back().rate), "/s: ", e));
      }
    }
  } else if (last_run) {
    out = *std::move(last_run);
  }
  if (outcome.knee) search.set_knee_rate(*outcome.knee);
  // The stop width asked for, in connects/s (a percentage is taken of the final upper end).
  search.set_precision(
      StopWidth(bounds, outcome.lowest_fail.value_or(outcome.knee.value_or(def.start))));
  std::string note = outcome.note;
  bool drops_unobserved = false;
  for (const auto& t : search.trials()) drops_unobserved |= !t.has_server_drops();
  if (drops_unobserved && !search.trials().empty()) {
    absl::StrAppend(&note, note.empty() ? "" : "; ",
                    "server drops not observed in every trial (no agent on the target's host, or "
                    "its counters were not collected): those trials were judged on the client's "
                    "figures alone");
  }
  search.set_note(note);

  const rv1::Listener* listener = nullptr;
  std::string listener_name;
  if (auto f = out.floods().find(def.flood); f != out.floods().end()) {
    listener_name = f->second.listener();
    if (auto l = out.listeners().find(listener_name); l != out.listeners().end()) {
      listener = &l->second;
    }
  }
  *search.mutable_model() = ModelKnee(
      listener, listener_name, trial_seconds,
      def.criterion == SearchCriterion::kPdr ? def.loss_percent / 100 : 0.0, outcome.knee);
  search.set_search_ms(std::chrono::duration<double, std::milli>(hooks.now() - began).count());
  *out.mutable_search() = std::move(search);
  return out;
}

}  // namespace synq::controller::search
