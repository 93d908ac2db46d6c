#include "controller/verdict/generator_rule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controller/verdict/diagnosis.h"

namespace synq::controller::verdict {

namespace v1 = ::synq::result::v1;

void GeneratorBehind(const std::string& name, const v1::Flood& flood,
                     std::vector<v1::Finding>& out) {
  if (flood.launches_dropped() == 0 && flood.launches_late() == 0) return;
  v1::Finding finding;
  finding.set_rule(kRuleGeneratorBehind);
  finding.set_flood(name);
  finding.set_host(flood.host());
  auto cite = [&](const std::string& field, double value) {
    v1::Evidence* e = finding.add_evidence();
    e->set_name(absl::StrCat("floods.", name, ".", field));
    e->set_value(value);
    return FormatFigure(value);
  };
  double peak_rate = flood.rate();
  int first_second = -1;
  for (const v1::FloodSecond& s : flood.series()) {
    peak_rate = std::max(peak_rate, s.rate());
    if (first_second < 0 && (s.dropped() > 0 || s.late() > 0)) {
      first_second = static_cast<int>(s.second());
    }
  }
  std::string text = absl::StrCat(
      name, ": the generator could not keep the schedule",
      flood.rate_profile().empty() ? "" : absl::StrCat(" (", flood.rate_profile(), ")"), ": ",
      cite("launches_dropped", flood.launches_dropped()), " launches were due but never made and ",
      cite("launches_late", flood.launches_late()), " started more than 1 ms late (max lag ",
      cite("launch_lag_max_ms", flood.launch_lag_max_ms()), " ms) of ",
      cite("attempted", flood.attempted()), " attempts, on ", cite("threads", flood.threads()),
      " thread(s) with concurrency ", cite("concurrency", flood.concurrency()));
  if (first_second >= 0) absl::StrAppend(&text, ", from second ", first_second);
  absl::StrAppend(&text,
                  ". The load offered was below the schedule, so the target's figures in those "
                  "seconds understate what the schedule asked of it.");
  std::string remedy;
  if (flood.launches_dropped() > 0) {
    // Dropped launches: every allowed socket was in flight. Little's law: sockets open at once
    // = arrival rate x time each stays open.
    double open_ms = flood.has_connect_latency_ms() ? flood.connect_latency_ms().p99() : 0;
    std::string needed;
    if (flood.close() == "keep" || flood.close().empty()) {
      needed = absl::StrCat(
          "close: keep holds every connection, so concurrency must cover "
          "every attempt (",
          flood.attempted() + flood.launches_dropped(), "), or use close: rst with a lifetime");
    } else if (peak_rate > 0) {
      open_ms += flood.lifetime_ms();
      const double in_flight = std::ceil(peak_rate * open_ms / 1000.0);
      needed = absl::StrFormat(
          "at the peak scheduled %s/s with sockets open ~%s ms (p99 connect + lifetime) about "
          "%s are in flight: set concurrency well above that (e.g. %s)",
          FormatFigure(peak_rate), FormatFigure(open_ms), FormatFigure(in_flight),
          FormatFigure(std::max(2 * in_flight, in_flight + 64)));
    }
    remedy =
        absl::StrCat("Raise concurrency", needed.empty() ? "" : absl::StrCat(" (", needed, ")"),
                     "; if launches are also late, add threads (threads: N, up to the "
                     "client host's cores) or lower the rate.");
  } else {
    remedy =
        "Add threads (threads: N, up to the client host's cores), give the flood's host a core "
        "of its own, or lower the rate.";
  }
  finding.set_text(std::move(text));
  finding.set_remedy(std::move(remedy));
  out.push_back(std::move(finding));
}

}  // namespace synq::controller::verdict
