#include "controller/result/flood_text.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace synq::controller::result {
namespace {

namespace rv1 = ::synq::result::v1;

uint64_t Failed(const rv1::FloodSecond& s) {
  return uint64_t{s.timed_out()} + s.reset() + s.refused() + s.errors();
}

}  // namespace

std::string SustainedFloodText(const rv1::Flood& f) {
  // Said only when it is not the usual io_uring: an agent that fell back to epoll.
  std::string engine;
  if (!f.engine().empty() && f.engine() != "io_uring") {
    engine = absl::StrCat("    flood engine: ", f.engine(), "\n");
  }
  if (f.threads() == 0 && f.rate_profile().empty()) return engine;
  std::string out = engine;
  std::vector<std::string> schedule;
  if (!f.rate_profile().empty()) schedule.push_back(f.rate_profile());
  if (f.duration_ms() > 0) schedule.push_back(absl::StrFormat("for %.4gs", f.duration_ms() / 1e3));
  if (!f.close().empty()) {
    schedule.push_back(f.close() == "keep"
                           ? "close keep"
                           : absl::StrFormat("close %s after %.4g ms", f.close(), f.lifetime_ms()));
  }
  if (f.threads() > 0) {
    schedule.push_back(absl::StrCat(f.threads(), f.threads() == 1 ? " thread" : " threads"));
    if (f.workers() > 1) schedule.push_back(absl::StrCat(f.workers(), " worker processes"));
    schedule.push_back(absl::StrCat("answered ", f.answered(), ", closed ", f.closed(),
                                    ", open peak ", f.open_peak()));
  }
  if (f.sources_size() > 0) {
    schedule.push_back(absl::StrCat("sources ", absl::StrJoin(f.sources(), ",")));
  }
  // A burst (connections, no duration, close keep) keeps its one-line row.
  const bool sustained = f.duration_ms() > 0 || (!f.close().empty() && f.close() != "keep") ||
                         f.series_size() > kSeriesMinSeconds ||
                         f.rate_profile().rfind("ramp", 0) == 0 ||
                         f.rate_profile().rfind("steps", 0) == 0;
  if (sustained) absl::StrAppend(&out, "    schedule: ", absl::StrJoin(schedule, "; "), "\n");
  if (f.launches_dropped() > 0 || f.launches_late() > 0) {
    absl::StrAppend(
        &out,
        absl::StrFormat("    !! generator fell behind: %d launches dropped, %d late (> 1 ms), "
                        "max lag %.3f ms -- the offered load was not the scheduled one\n",
                        f.launches_dropped(), f.launches_late(), f.launch_lag_max_ms()));
  }
  for (const auto& e : f.worker_errors()) absl::StrAppend(&out, "    !! worker: ", e, "\n");
  if (f.records_dropped() > 0) {
    absl::StrAppend(&out, "    connection records beyond the cap: ", f.records_dropped(), "\n");
  }
  const int n = f.series_size();
  if (n <= kSeriesMinSeconds) return out;
  const int group = (n + kSeriesMaxLines - 1) / kSeriesMaxLines;
  absl::StrAppend(&out, absl::StrFormat("    %-7s %8s %8s %8s %8s %6s %6s %9s\n", "second",
                                        "rate/s", "launched", "estab", "failed", "late", "drop",
                                        group > 1 ? "max p99" : "p99 ms"));
  bool marked = false;
  for (int i = 0; i < n; i += group) {
    const int end = std::min(n, i + group);
    double rate = 0, p99 = -1;
    uint64_t launched = 0, estab = 0, failed = 0, late = 0, dropped = 0;
    for (int k = i; k < end; ++k) {
      const rv1::FloodSecond& s = f.series(k);
      rate += s.rate() / (end - i);
      launched += s.launched();
      estab += s.established();
      failed += Failed(s);
      late += s.late();
      dropped += s.dropped();
      if (s.has_connect_latency_ms()) p99 = std::max(p99, s.connect_latency_ms().p99());
    }
    const std::string label =
        group > 1 ? absl::StrCat(f.series(i).second(), "-", f.series(end - 1).second())
                  : absl::StrCat(f.series(i).second());
    const std::string p99_text = p99 < 0 ? "-" : absl::StrFormat("%.3f", p99);
    std::string mark;
    if (!marked && (failed > 0 || dropped > 0)) {
      mark = failed > 0 ? "  <- first failures" : "  <- first drops";
      marked = true;
    }
    absl::StrAppend(&out, absl::StrFormat("    %-7s %8.0f %8d %8d %8d %6d %6d %9s%s\n", label, rate,
                                          launched, estab, failed, late, dropped, p99_text, mark));
  }
  return out;
}

}  // namespace synq::controller::result
