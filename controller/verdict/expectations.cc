#include "controller/verdict/expectations.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "controller/result/format.h"
#include "controller/verdict/expression.h"
#include "controller/verdict/field_path.h"

namespace synq::controller::verdict {
namespace {

namespace v1 = ::synq::result::v1;

ScenarioError ErrorFor(const ExpectDef& e, absl::string_view message) {
  return {e.path, absl::StrCat(message, "; expression: ", e.expression)};
}

std::string FormatValue(double value) { return result::FormatNumber(value); }

}  // namespace

std::vector<ScenarioError> CheckExpectations(const Scenario& scenario) {
  std::vector<ScenarioError> errors;
  for (const ExpectDef& e : scenario.expectations) {
    absl::StatusOr<Expression> parsed = Expression::Parse(e.expression);
    if (!parsed.ok()) {
      errors.push_back(ErrorFor(e, parsed.status().message()));
      continue;
    }
    for (const std::string& path : parsed->paths()) {
      absl::Status status = CheckFieldPath(scenario, path);
      if (!status.ok()) errors.push_back(ErrorFor(e, status.message()));
    }
  }
  return errors;
}

void EvaluateExpectations(const Scenario& scenario, result::v1::Run* run) {
  run->clear_expectations();
  for (const ExpectDef& e : scenario.expectations) {
    v1::Expectation* out = run->add_expectations();
    out->set_expression(e.expression);
    out->set_passed(false);
    absl::StatusOr<Expression> parsed = Expression::Parse(e.expression);
    if (!parsed.ok()) {
      out->set_error(std::string(parsed.status().message()));
      continue;
    }
    std::vector<double> values;
    std::vector<std::string> unreadable;
    for (const std::string& path : parsed->paths()) {
      absl::StatusOr<double> value = ReadFieldPath(*run, path);
      if (value.ok()) {
        (*out->mutable_values())[path] = *value;
        values.push_back(*value);
      } else {
        unreadable.emplace_back(value.status().message());
      }
    }
    if (!unreadable.empty()) {
      out->set_error(absl::StrJoin(unreadable, "; "));
      continue;
    }
    absl::StatusOr<Evaluation> evaluation = parsed->Evaluate(values);
    if (!evaluation.ok()) {
      out->set_error(std::string(evaluation.status().message()));
      continue;
    }
    for (size_t i = 0; i < parsed->comparisons().size(); ++i) {
      const ComparisonSpan& span = parsed->comparisons()[i];
      const ComparisonValue& value = evaluation->comparisons[i];
      v1::Comparison* c = out->add_comparisons();
      c->set_left(span.left);
      c->set_op(span.op);
      c->set_right(span.right);
      c->set_left_value(value.left);
      c->set_right_value(value.right);
      c->set_passed(value.passed);
    }
    out->set_passed(evaluation->passed);
  }
}

bool ExpectationsPassed(const result::v1::Result& result) {
  for (const v1::Run& run : result.runs()) {
    for (const v1::Expectation& e : run.expectations()) {
      if (!e.passed()) return false;
    }
  }
  return true;
}

std::string RenderExpectations(const result::v1::Run& run) {
  // Values line up in a column, unless a long expression would push them far right.
  constexpr size_t kMaxWidth = 60;
  size_t width = 0;
  for (const v1::Expectation& e : run.expectations()) {
    if (e.expression().size() <= kMaxWidth) width = std::max(width, e.expression().size());
  }
  std::string out;
  for (const v1::Expectation& e : run.expectations()) {
    std::string detail;
    if (!e.error().empty()) {
      detail = absl::StrCat("error: ", e.error());
    } else {
      detail =
          absl::StrCat("(",
                       absl::StrJoin(e.comparisons(), ", ",
                                     [](std::string* s, const v1::Comparison& c) {
                                       absl::StrAppend(s, FormatValue(c.left_value()), " ", c.op(),
                                                       " ", FormatValue(c.right_value()));
                                     }),
                       ")");
    }
    absl::StrAppend(&out, e.passed() ? "PASS  " : "FAIL  ", e.expression(),
                    std::string(width - std::min(width, e.expression().size()) + 3, ' '), detail,
                    "\n");
  }
  return out;
}

}  // namespace synq::controller::verdict
