#include "controller/result/junit.h"

#include <cstdint>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "controller/verdict/baseline.h"

namespace synq::controller::result {
namespace {

struct Case {
  std::string name;
  enum class Kind { kPass, kFailure, kError, kSkipped } kind = Kind::kPass;
  std::string type;
  std::string message;
  std::string body;
  std::string system_out;
};

std::string ExpectationMessage(const synq::result::v1::Expectation& e) {
  std::vector<std::string> failed;
  for (const auto& c : e.comparisons()) {
    if (c.passed()) continue;
    const std::string values = absl::StrCat(verdict::FormatNumber(c.left_value()), " ", c.op(), " ",
                                            verdict::FormatNumber(c.right_value()));
    failed.push_back(e.comparisons_size() == 1
                         ? values
                         : absl::StrCat(c.left(), " ", c.op(), " ", c.right(), " (", values, ")"));
  }
  if (failed.empty()) {
    std::vector<std::string> values;
    for (const auto& [path, v] : e.values())
      values.push_back(absl::StrCat(path, " = ", verdict::FormatNumber(v)));
    return absl::StrCat(e.expression(), " is false",
                        values.empty() ? "" : absl::StrCat(": ", absl::StrJoin(values, ", ")));
  }
  return absl::StrCat(e.expression(), " is false: ", absl::StrJoin(failed, "; "));
}

std::string ExpectationBody(const synq::result::v1::Expectation& e) {
  std::string body = absl::StrCat(e.expression(), "\n");
  for (const auto& c : e.comparisons()) {
    absl::StrAppend(&body, "  ", c.left(), " ", c.op(), " ", c.right(), ": ",
                    verdict::FormatNumber(c.left_value()), " ", c.op(), " ",
                    verdict::FormatNumber(c.right_value()), c.passed() ? " passed" : " FAILED",
                    "\n");
  }
  for (const auto& [path, v] : e.values()) {
    absl::StrAppend(&body, "  ", path, " = ", verdict::FormatNumber(v), "\n");
  }
  return body;
}

std::vector<Case> RunCases(const synq::result::v1::Run& run) {
  std::vector<Case> cases;
  Case done{.name = "run completed"};
  if (!run.errors().empty()) {
    done.kind = Case::Kind::kFailure;
    done.type = "run_error";
    done.message = absl::StrJoin(run.errors(), "; ");
    done.body = absl::StrCat(absl::StrJoin(run.errors(), "\n"), "\n");
  }
  for (const auto& f : run.diagnosis()) absl::StrAppend(&done.system_out, f.text(), "\n");
  cases.push_back(std::move(done));

  for (const auto& e : run.expectations()) {
    Case c{.name = e.expression()};
    if (!e.error().empty()) {
      c.kind = Case::Kind::kError;
      c.type = "expectation_error";
      c.message = absl::StrCat(e.expression(), ": cannot be evaluated: ", e.error());
      c.body = c.message + "\n";
    } else if (!e.passed()) {
      c.kind = Case::Kind::kFailure;
      c.type = "expectation";
      c.message = ExpectationMessage(e);
      c.body = ExpectationBody(e);
    }
    cases.push_back(std::move(c));
  }

  if (run.has_baseline()) {
    const auto& b = run.baseline();
    if (b.baseline_run_index() < 0) {
      // Unmatched while other runs matched: skipped; nothing matched at all: a failure.
      cases.push_back(Case{.name = "baseline",
                           .kind = b.passed() ? Case::Kind::kSkipped : Case::Kind::kFailure,
                           .type = "no_baseline_run",
                           .message = b.note().empty() ? "no matching baseline run" : b.note()});
    }
    for (const auto& check : b.checks()) {
      Case c{.name = absl::StrCat("baseline ", check.field())};
      if (!check.passed()) {
        c.kind = Case::Kind::kFailure;
        c.type = "baseline_regression";
        c.message = verdict::DescribeCheck(check);
        c.body = absl::StrCat(c.message, "\nbaseline: ", b.file(), " run ", b.baseline_run_index(),
                              "\n");
      }
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

std::string SuiteName(const synq::result::v1::Result& result, const synq::result::v1::Run& run) {
  const std::string scenario = result.scenario().empty() ? "synq" : result.scenario();
  const std::string params = verdict::DescribeParams(run);
  return params.empty() ? absl::StrCat(scenario, " run ", run.index())
                        : absl::StrCat(scenario, " [", params, "]");
}

std::string Seconds(double ms) { return absl::StrFormat("%.3f", ms > 0 ? ms / 1000.0 : 0.0); }

}  // namespace

std::string RenderJUnit(const synq::result::v1::Result& result) {
  std::string suites;
  int total = 0;
  int total_failures = 0;
  int total_errors = 0;
  double total_ms = 0;
  for (const auto& run : result.runs()) {
    const std::vector<Case> cases = RunCases(run);
    const std::string name = SuiteName(result, run);
    int failures = 0;
    int errors = 0;
    int skipped = 0;
    for (const Case& c : cases) {
      failures += c.kind == Case::Kind::kFailure ? 1 : 0;
      errors += c.kind == Case::Kind::kError ? 1 : 0;
      skipped += c.kind == Case::Kind::kSkipped ? 1 : 0;
    }
    total += static_cast<int>(cases.size());
    total_failures += failures;
    total_errors += errors;
    total_ms += run.duration_ms();
    absl::StrAppend(&suites, "  <testsuite name=\"", XmlEscape(name), "\" tests=\"", cases.size(),
                    "\" failures=\"", failures, "\" errors=\"", errors, "\" skipped=\"", skipped,
                    "\" time=\"", Seconds(run.duration_ms()), "\"");
    if (!run.run_id().empty()) absl::StrAppend(&suites, " id=\"", XmlEscape(run.run_id()), "\"");
    absl::StrAppend(&suites, ">\n");
    if (!run.params().empty()) {
      absl::StrAppend(&suites, "    <properties>\n");
      std::map<std::string, std::string> sorted;
      for (const auto& [path, v] : run.params()) {
        sorted[path] = v.has_string_value() ? v.string_value()
                       : v.has_bool_value() ? (v.bool_value() ? "true" : "false")
                                            : verdict::FormatNumber(v.number_value());
      }
      for (const auto& [path, v] : sorted) {
        absl::StrAppend(&suites, "      <property name=\"", XmlEscape(path), "\" value=\"",
                        XmlEscape(v), "\"/>\n");
      }
      absl::StrAppend(&suites, "    </properties>\n");
    }
    for (const Case& c : cases) {
      absl::StrAppend(&suites, "    <testcase name=\"", XmlEscape(c.name), "\" classname=\"",
                      XmlEscape(name), "\" time=\"0\"");
      if (c.kind == Case::Kind::kPass && c.system_out.empty()) {
        absl::StrAppend(&suites, "/>\n");
        continue;
      }
      absl::StrAppend(&suites, ">\n");
      if (c.kind != Case::Kind::kPass) {
        const char* element = c.kind == Case::Kind::kFailure ? "failure"
                              : c.kind == Case::Kind::kError ? "error"
                                                             : "skipped";
        absl::StrAppend(&suites, "      <", element, " message=\"", XmlEscape(c.message),
                        "\" type=\"", XmlEscape(c.type), "\">", XmlEscape(c.body, false), "</",
                        element, ">\n");
      }
      if (!c.system_out.empty()) {
        absl::StrAppend(&suites, "      <system-out>", XmlEscape(c.system_out, false),
                        "</system-out>\n");
      }
      absl::StrAppend(&suites, "    </testcase>\n");
    }
    absl::StrAppend(&suites, "  </testsuite>\n");
  }
  return absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "<testsuites name=\"",
                      XmlEscape(result.scenario().empty() ? "synq" : result.scenario()),
                      "\" tests=\"", total, "\" failures=\"", total_failures, "\" errors=\"",
                      total_errors, "\" time=\"", Seconds(total_ms), "\">\n", suites,
                      "</testsuites>\n");
}

}  // namespace synq::controller::result
