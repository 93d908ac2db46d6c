#include "controller/scenario/sweep.h"

#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "controller/scenario/checks.h"
#include "controller/scenario/fields.h"

namespace synq::controller {
namespace scenario {
namespace {

template <typename T>
absl::StatusOr<const FieldSpec<T>*> SweepableField(absl::string_view what,
                                                   const FieldTable<T>& table,
                                                   absl::string_view field) {
  auto it = table.find(field);
  if (it == table.end() || !it->second.sweepable) {
    return Invalid(absl::StrCat(what, " have no sweepable field ", Quote(field),
                                "; sweepable: ", FieldNames(table, true)));
  }
  return &it->second;
}

template <typename T>
absl::StatusOr<size_t> IndexByName(const std::vector<T>& items, absl::string_view name,
                                   absl::string_view what) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].name == name) return i;
  }
  return Invalid(absl::StrCat("no ", what, " named ", Quote(name)));
}

// The target for field `field` of item `index` of the list `items` points to (listeners,
// floods or shaping): checks through the field table, stores into that item.
template <typename T>
absl::StatusOr<SweepTarget> ItemTarget(FieldRef::Kind kind, size_t index, absl::string_view what,
                                       std::vector<T> Scenario::*items, const FieldTable<T>& table,
                                       absl::string_view field) {
  absl::StatusOr<const FieldSpec<T>*> spec = SweepableField(what, table, field);
  if (!spec.ok()) return spec.status();
  SweepTarget target;
  target.ref = {kind, index, "", std::string(field)};
  target.parse = [spec = *spec](const Scalar& s) { return spec->parse(s); };
  target.assign = [spec = *spec, items, index](const FieldValue& value, Scenario& s) {
    std::vector<T>& list = s.*items;
    if (index >= list.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("item ", index, " does not exist in this scenario"));
    }
    return spec->assign(value, list[index]);
  };
  return target;
}

// Splits "<first>.<rest>"; the rest may contain dots only for settings keys.
std::optional<std::pair<absl::string_view, absl::string_view>> SplitFirst(absl::string_view text) {
  const size_t dot = text.find('.');
  if (dot == absl::string_view::npos || dot == 0 || dot + 1 == text.size()) return std::nullopt;
  return std::make_pair(text.substr(0, dot), text.substr(dot + 1));
}

}  // namespace

absl::StatusOr<SweepTarget> ResolveSweepTarget(const Scenario& s, absl::string_view path) {
  using Kind = FieldRef::Kind;
  const absl::string_view usage =
      "expected sample_interval, listeners.<name>.<field>, floods.<name>.<field>, "
      "settings.<host>.<key>, shaping[<i>].<field> or shaping.<host>.<field>";

  if (path == "sample_interval") {
    SweepTarget target;
    target.ref = {Kind::kSampleInterval, 0, "", "sample_interval"};
    target.parse = [](const Scalar& scalar) -> absl::StatusOr<FieldValue> {
      absl::StatusOr<std::chrono::nanoseconds> interval = ParseSampleInterval(scalar);
      if (!interval.ok()) return interval.status();
      return FieldValue(*interval);
    };
    target.assign = [](const FieldValue& value, Scenario& scenario) {
      const auto* interval = std::get_if<std::chrono::nanoseconds>(&value);
      if (interval == nullptr) return absl::InternalError("a value of another field's type");
      scenario.sample_interval = *interval;
      return absl::OkStatus();
    };
    return target;
  }
  if (absl::ConsumePrefix(&path, "listeners.")) {
    auto parts = SplitFirst(path);
    if (!parts) return Invalid(absl::StrCat("does not name a field; ", usage));
    absl::StatusOr<size_t> index = IndexByName(s.listeners, parts->first, "listener");
    if (!index.ok()) return index.status();
    return ItemTarget(Kind::kListener, *index, "listeners", &Scenario::listeners, ListenerFields(),
                      parts->second);
  }
  if (absl::ConsumePrefix(&path, "floods.")) {
    auto parts = SplitFirst(path);
    if (!parts) return Invalid(absl::StrCat("does not name a field; ", usage));
    absl::StatusOr<size_t> index = IndexByName(s.floods, parts->first, "flood");
    if (!index.ok()) return index.status();
    return ItemTarget(Kind::kFlood, *index, "floods", &Scenario::floods, FloodFields(),
                      parts->second);
  }
  if (absl::ConsumePrefix(&path, "settings.")) {
    auto parts = SplitFirst(path);
    if (!parts) return Invalid(absl::StrCat("does not name a setting; ", usage));
    std::string host(parts->first);
    if (s.FindHost(host) == nullptr) return Invalid(absl::StrCat("no host named ", Quote(host)));
    absl::Status key_ok = CheckSettingKey(parts->second);
    if (!key_ok.ok()) return key_ok;
    std::string key(parts->second);
    SweepTarget target;
    target.ref = {Kind::kSetting, 0, host, key};
    target.parse = [key](const Scalar& scalar) -> absl::StatusOr<FieldValue> {
      absl::StatusOr<int64_t> value = ParseSetting(key, scalar);
      if (!value.ok()) return value.status();
      return FieldValue(std::in_place_type<int64_t>, *value);
    };
    target.assign = [host, key](const FieldValue& value, Scenario& scenario) {
      const int64_t* setting = std::get_if<int64_t>(&value);
      if (setting == nullptr) return absl::InternalError("a value of another field's type");
      scenario.settings[host][key] = *setting;
      return absl::OkStatus();
    };
    return target;
  }
  if (absl::ConsumePrefix(&path, "shaping[")) {
    const size_t close = path.find("].");
    size_t index = 0;
    if (close == absl::string_view::npos || !absl::SimpleAtoi(path.substr(0, close), &index)) {
      return Invalid(absl::StrCat("does not name a field; ", usage));
    }
    if (index >= s.shaping.size()) {
      return Invalid(
          absl::StrCat("no shaping entry ", index, " (there are ", s.shaping.size(), ")"));
    }
    return ItemTarget(Kind::kShaping, index, "shaping entries", &Scenario::shaping, ShapingFields(),
                      path.substr(close + 2));
  }
  if (absl::ConsumePrefix(&path, "shaping.")) {
    auto parts = SplitFirst(path);
    if (!parts) return Invalid(absl::StrCat("does not name a field; ", usage));
    std::vector<size_t> matches;
    for (size_t i = 0; i < s.shaping.size(); ++i) {
      if (s.shaping[i].host == parts->first) matches.push_back(i);
    }
    if (matches.empty()) {
      return Invalid(absl::StrCat("no shaping entry for host ", Quote(parts->first)));
    }
    if (matches.size() > 1) {
      return Invalid(absl::StrCat(matches.size(), " shaping entries for host ", Quote(parts->first),
                                  "; use shaping[<i>] to pick one"));
    }
    return ItemTarget(Kind::kShaping, matches.front(), "shaping entries", &Scenario::shaping,
                      ShapingFields(), parts->second);
  }
  return Invalid(absl::StrCat("does not name a field; ", usage));
}

Scalar ScalarOf(const SweepValue& value) {
  return {value.Text(), value.kind() == SweepValue::Kind::kString};
}

absl::Status ApplyCombination(const std::vector<SweepAxis>& axes,
                              const std::vector<size_t>& indices, Scenario& s) {
  for (size_t a = 0; a < axes.size() && a < indices.size(); ++a) {
    const SweepAxis& axis = axes[a];
    if (!axis.resolved() || indices[a] >= axis.field_values.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("sweep.", axis.path, ": not resolved against this scenario"));
    }
    absl::Status applied = axis.target.assign(axis.field_values[indices[a]], s);
    if (!applied.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("sweep.", axis.path, ": ", applied.message()));
    }
  }
  return absl::OkStatus();
}

void ForEachCombination(const std::vector<size_t>& sizes,
                        const std::function<bool(const std::vector<size_t>&)>& visit) {
  std::vector<size_t> indices(sizes.size(), 0);
  for (size_t size : sizes) {
    if (size == 0) return;
  }
  while (true) {
    if (!visit(indices)) return;
    size_t axis = sizes.size();
    while (axis > 0) {
      --axis;
      if (++indices[axis] < sizes[axis]) break;
      indices[axis] = 0;
      if (axis == 0) return;
    }
    if (sizes.empty()) return;
  }
}

uint64_t CountRuns(const std::vector<SweepAxis>& axes) {
  uint64_t runs = 1;
  for (const SweepAxis& axis : axes) {
    runs *= axis.values.size();
    if (runs > kMaxRuns) return kMaxRuns + 1;
  }
  return runs;
}

}  // namespace scenario

absl::StatusOr<SweepAxis> MakeSweepAxis(const Scenario& base, std::string path,
                                        std::vector<SweepValue> values) {
  using scenario::Invalid;
  absl::StatusOr<SweepTarget> target = scenario::ResolveSweepTarget(base, path);
  if (!target.ok()) return Invalid(absl::StrCat("sweep.", path, ": ", target.status().message()));
  SweepAxis axis{std::move(path), std::move(values), *std::move(target), {}};
  for (const SweepValue& value : axis.values) {
    absl::StatusOr<scenario::FieldValue> parsed = axis.target.parse(scenario::ScalarOf(value));
    if (!parsed.ok()) {
      return Invalid(absl::StrCat("sweep.", axis.path, ": value ", value.Describe(), ": ",
                                  parsed.status().message()));
    }
    axis.field_values.push_back(*std::move(parsed));
  }
  return axis;
}

absl::StatusOr<std::vector<RunPlan>> ExpandSweep(const Scenario& s) {
  using scenario::Invalid;
  Scenario base = s;
  base.sweep.clear();  // each run is concrete
  std::vector<size_t> sizes;
  for (const SweepAxis& axis : s.sweep) {
    if (!axis.resolved()) {
      return Invalid(absl::StrCat("sweep.", axis.path,
                                  ": not resolved; make sweep axes with LoadScenario or "
                                  "MakeSweepAxis"));
    }
    if (axis.values.empty()) return Invalid(absl::StrCat("sweep.", axis.path, ": no values"));
    sizes.push_back(axis.values.size());
  }
  if (scenario::CountRuns(s.sweep) > scenario::kMaxRuns) {
    return Invalid(absl::StrCat("sweep: more than ", scenario::kMaxRuns, " runs"));
  }
  std::vector<RunPlan> plans;
  absl::Status status;
  scenario::ForEachCombination(sizes, [&](const std::vector<size_t>& indices) {
    RunPlan plan{base, {}};
    status = scenario::ApplyCombination(s.sweep, indices, plan.scenario);
    if (!status.ok()) return false;
    for (size_t a = 0; a < indices.size(); ++a) {
      plan.params.emplace_back(s.sweep[a].path, s.sweep[a].values[indices[a]]);
    }
    std::vector<std::string> problems;
    for (const scenario::CrossError& e : scenario::CheckCrossFields(plan.scenario)) {
      problems.push_back(e.error.ToString());
    }
    if (!problems.empty()) {
      std::vector<std::string> with;
      for (const auto& [path, value] : plan.params) {
        with.push_back(absl::StrCat(path, "=", value.Describe()));
      }
      status = Invalid(absl::StrCat("run with ", absl::StrJoin(with, ", "), ": ",
                                    absl::StrJoin(problems, "; ")));
      return false;
    }
    plans.push_back(std::move(plan));
    return true;
  });
  if (!status.ok()) return status;
  return plans;
}

}  // namespace synq::controller
