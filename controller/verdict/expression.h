// An expectation's expression: scanned for field paths and its and/or structure, compiled and
// evaluated by muParser. Grammar: numbers, field paths, + - * /, min(a, b, ...), max(...),
// abs(x), parentheses, comparisons == != < <= > >=, `and`/`or` (also && and ||). Every operand
// of and/or is a comparison. Comparisons of doubles are exact (the counts compared are integers).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace synq::controller::verdict {

// One comparison of the expression (at any depth of its and/or structure).
struct ComparisonSpan {
  std::string left;  // the texts as written, trimmed
  std::string op;    // "==", "!=", "<", "<=", ">", ">="
  std::string right;
  std::string left_code;  // the sides as muParser code (paths replaced by variables)
  std::string right_code;
};

struct ComparisonValue {
  double left = 0;
  double right = 0;
  bool passed = false;
};

struct Evaluation {
  bool passed = false;
  std::vector<ComparisonValue> comparisons;  // as Expression::comparisons()
};

class Expression {
 public:
  // Scans and compiles `text`. InvalidArgument, naming the position (0-based) or the part: a
  // character outside the grammar, `=` for `==`, an unknown function, a muParser syntax error,
  // an and/or operand that is not a comparison, chained comparisons (a < b < c).
  static absl::StatusOr<Expression> Parse(const std::string& text);

  const std::string& text() const { return text_; }
  // Field paths in order of first appearance, each once.
  const std::vector<std::string>& paths() const { return paths_; }
  const std::vector<ComparisonSpan>& comparisons() const { return comparisons_; }

  // Evaluates with values[i] bound to paths()[i]. A side that is not a finite number (division
  // by zero) is InvalidArgument naming that side.
  absl::StatusOr<Evaluation> Evaluate(const std::vector<double>& values) const;

 private:
  std::string text_;
  std::string code_;  // muParser code: paths -> variables, and/or -> &&/||
  std::vector<std::string> paths_;
  std::vector<std::string> variables_;  // variables_[i] stands for paths_[i]
  std::vector<ComparisonSpan> comparisons_;
};

}  // namespace synq::controller::verdict
