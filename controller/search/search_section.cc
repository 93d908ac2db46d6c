#include "controller/search/search_section.h"

#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/scenario/values.h"

namespace synq::controller {

const char* CriterionName(SearchCriterion c) { return c == SearchCriterion::kPdr ? "pdr" : "ndr"; }

namespace search {
namespace {

using scenario::Scalar;

constexpr double kMaxRate = 1e7;  // connects/s; far past what one host can offer
constexpr auto kMaxTrial = std::chrono::minutes(10);

bool IsQuoted(const YAML::Node& node) {
  return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
}

}  // namespace

std::vector<ScenarioError> ParseSearchSection(const YAML::Node& node, Scenario& s) {
  std::vector<ScenarioError> errors;
  auto error = [&errors](const std::string& field, absl::string_view message) {
    errors.push_back(
        {field.empty() ? "search" : absl::StrCat("search.", field), std::string(message)});
  };
  SearchDef def;
  if (!node.IsMap()) {
    error("",
          "expected a map: {flood: NAME, criterion: ndr|pdr, loss: 0.5%, trial: 3s, start: "
          "500, max: 100000, precision: 50 | 2%}");
    s.search = def;
    return errors;
  }
  static const std::set<std::string> kFields = {"flood", "criterion", "loss",     "trial",
                                                "start", "max",       "precision"};
  std::set<std::string> seen;
  std::optional<double> loss;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      error("", "keys must be plain strings");
      continue;
    }
    const std::string key = it->first.Scalar();
    if (!kFields.contains(key)) {
      error(key, absl::StrCat("unknown field (known: ", absl::StrJoin(kFields, ", "), ")"));
      continue;
    }
    if (!seen.insert(key).second) {
      error(key, "duplicate field");
      continue;
    }
    if (!it->second.IsScalar()) {
      error(key, "expected a scalar value");
      continue;
    }
    const Scalar value{it->second.Scalar(), IsQuoted(it->second)};
    auto number = [&](double min) -> std::optional<double> {
      absl::StatusOr<double> n = scenario::ParseNumber(value, min, kMaxRate);
      if (!n.ok()) {
        error(key, absl::StrCat(n.status().message(), " (connects/s)"));
        return std::nullopt;
      }
      if (*n <= 0) {
        error(key, absl::StrCat("must be more than 0 connects/s, got ", value.text));
        return std::nullopt;
      }
      return *n;
    };
    if (key == "flood") {
      def.flood = value.text;
    } else if (key == "criterion") {
      if (value.text == "ndr") {
        def.criterion = SearchCriterion::kNdr;
      } else if (value.text == "pdr") {
        def.criterion = SearchCriterion::kPdr;
      } else {
        error(key, absl::StrCat("expected ndr (no drop rate) or pdr (drops within `loss`), got ",
                                scenario::Quote(value.text)));
      }
    } else if (key == "loss") {
      absl::StatusOr<double> p = scenario::ParsePercent(value);
      if (!p.ok()) {
        error(key, p.status().message());
      } else if (*p <= 0 || *p >= 100) {
        error(key, absl::StrCat("must lie between 0% and 100% (both excluded), got ", value.text));
      } else {
        loss = *p;
      }
    } else if (key == "trial") {
      absl::StatusOr<std::chrono::nanoseconds> d =
          scenario::ParseDurationAtLeast(value, /*allow_zero=*/false);
      if (!d.ok()) {
        error(key, d.status().message());
      } else if (*d > kMaxTrial) {
        error(key, absl::StrCat("at most 600s per trial, got ", value.text));
      } else {
        def.trial = *d;
      }
    } else if (key == "start") {
      if (auto n = number(0)) def.start = *n;
    } else if (key == "max") {
      if (auto n = number(0)) def.max = *n;
    } else if (key == "precision") {
      if (absl::EndsWith(value.text, "%")) {
        absl::StatusOr<double> p = scenario::ParsePercent(value);
        if (!p.ok()) {
          error(key, p.status().message());
        } else if (*p <= 0 || *p >= 100) {
          error(key, absl::StrCat("a percentage must lie between 0% and 100% (both excluded), got ",
                                  value.text));
        } else {
          def.precision = *p;
          def.precision_is_percent = true;
        }
      } else if (auto n = number(0)) {
        def.precision = *n;
      }
    }
  }
  // Cross-field rules.
  if (def.criterion == SearchCriterion::kPdr) {
    if (loss) {
      def.loss_percent = *loss;
    } else if (!seen.contains("loss")) {
      error("loss", "required with criterion: pdr (the loss tolerated, e.g. 0.5%)");
    }
  } else if (seen.contains("loss")) {
    error("loss", "only used with criterion: pdr (ndr tolerates no loss)");
  }
  if (def.max < def.start) {
    error("max", absl::StrCat("must be at least start (", def.start, "), got ", def.max));
  }
  if (def.flood.empty()) {
    if (s.floods.size() == 1) {
      def.flood = s.floods.front().name;
    } else if (!seen.contains("flood")) {
      error("flood", absl::StrCat("required: the scenario has ", s.floods.size(),
                                  " floods; name the one whose rate is searched"));
    } else {
      error("flood", "must not be empty");
    }
  } else {
    size_t index = s.floods.size();
    for (size_t i = 0; i < s.floods.size(); ++i) {
      if (s.floods[i].name == def.flood) index = i;
    }
    if (index == s.floods.size()) {
      std::vector<std::string> names;
      for (const auto& f : s.floods) names.push_back(f.name);
      error("flood", absl::StrCat("no flood named ", scenario::Quote(def.flood), " (floods: ",
                                  names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
    } else {
      for (const SweepAxis& axis : s.sweep) {
        const FieldRef& ref = axis.target.ref;
        if (ref.kind == FieldRef::Kind::kFlood && ref.index == index &&
            (ref.field == "rate" || ref.field == "connections")) {
          errors.push_back({absl::StrCat("sweep.", axis.path),
                            absl::StrCat("the search sets floods.", def.flood, ".", ref.field,
                                         " in every trial; sweep other fields")});
        }
      }
    }
  }
  s.search = def;
  return errors;
}

}  // namespace search
}  // namespace synq::controller
