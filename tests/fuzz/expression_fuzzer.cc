// Fuzzes the expectation parser (controller/verdict/expression): any text compiles or gives an
// error; one that compiles evaluates with every path bound (to values taken from the input), and
// the evaluation has one value per comparison.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "controller/verdict/expression.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using synq::controller::verdict::Expression;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Expression> expression = Expression::Parse(text);
  if (!expression.ok()) return 0;
  std::vector<double> values;
  for (size_t i = 0; i < expression->paths().size(); ++i) {
    // Values from the input bytes: small integers, 0 included (division by zero), negatives.
    values.push_back(static_cast<double>(static_cast<int8_t>(size > 0 ? data[i % size] : 0)) / 4);
  }
  absl::StatusOr<synq::controller::verdict::Evaluation> evaluation = expression->Evaluate(values);
  if (evaluation.ok()) Check(evaluation->comparisons.size() == expression->comparisons().size());
  return 0;
}
