// Fuzzes the scalar parsers of scenario values: durations, rates, percents, numbers. Any text
// gives a value within the documented bounds or an error, never a crash or undefined behaviour
// (a float-to-integer cast out of range is UB: UBSan aborts on it here).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/limits.h"
#include "controller/scenario/values.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synq::controller;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::chrono::nanoseconds> d = ParseDuration(text);
  if (d.ok()) Check(d->count() >= 0 && *d <= synq::common::kMaxDuration);
  const scenario::Scalar plain{text, false};
  const scenario::Scalar quoted{text, true};
  absl::StatusOr<std::chrono::nanoseconds> bounded = scenario::ParseDurationIn(
      plain, std::chrono::milliseconds(1), synq::common::kMaxConnectTimeout);
  if (bounded.ok()) {
    Check(*bounded >= std::chrono::milliseconds(1) && *bounded <= synq::common::kMaxConnectTimeout);
  }
  if (d.ok()) (void)scenario::DurationText(*d);
  (void)scenario::ParseDurationAtLeast(quoted, false);
  absl::StatusOr<uint64_t> rate = scenario::ParseRate(plain);
  if (rate.ok()) Check(*rate <= static_cast<uint64_t>(scenario::kMaxRateBits));
  absl::StatusOr<double> percent = scenario::ParsePercent(plain);
  if (percent.ok()) Check(*percent >= 0 && *percent <= 1e6);
  absl::StatusOr<double> number = scenario::ParseNumber(plain, 0, 1e7);
  if (number.ok()) Check(*number >= 0 && *number <= 1e7);
  absl::StatusOr<int64_t> integer = scenario::ParseInt(plain, -1, 65535);
  if (integer.ok()) Check(*integer >= -1 && *integer <= 65535);
  (void)scenario::ParseBool(plain);
  (void)scenario::ParseAcceptMode(plain);
  (void)scenario::ParseCloseMode(plain);
  (void)scenario::ParseShapingBackend(plain);
  return 0;
}
