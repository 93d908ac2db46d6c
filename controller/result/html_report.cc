#include "controller/result/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/histogram.h"
#include "controller/result/counter_catalog.h"
#include "controller/result/escape.h"
#include "controller/result/flood_series_chart.h"
#include "controller/result/format.h"
#include "controller/search/search_render.h"

namespace synq::controller::result {
namespace {

namespace v1 = ::synq::result::v1;

// Plot colours. The integration test reads them back from the DOM (the fill of each plot
// element) and looks for them in the screenshot, so every plot mark is one flat colour.
constexpr char kEstablished[] = "#2e7d32";
constexpr char kReset[] = "#c62828";
constexpr char kRefused[] = "#ef6c00";
constexpr char kTimedOut[] = "#6a1b9a";
constexpr char kError[] = "#37474f";
constexpr char kAccepted[] = "#1b5e20";
constexpr char kQueued[] = "#66bb6a";
constexpr char kSynRecv[] = "#f9a825";
constexpr char kUnknown[] = "#0277bd";
constexpr char kUnjoined[] = "#9e9e9e";
constexpr char kHistBar[] = "#1565c0";
constexpr char kBand[] = "#ffb300";
constexpr char kQueueLine[] = "#283593";
constexpr char kSynRecvLine[] = "#ef6c00";
constexpr char kQueueMaxLine[] = "#616161";
constexpr char kCounterLine[] = "#ad1457";

// Series longer than this are downsampled (per time bin, the largest value) so that a long run
// does not make a report of megabytes; peaks survive, which is what a queue plot is read for.
constexpr size_t kMaxSeriesPoints = 400;

}  // namespace

std::vector<double> SynRetransmitSeconds(int linear_timeouts, int count) {
  // A SYN that gets no answer is retransmitted after the initial RTO (TCP_TIMEOUT_INIT, 1 s).
  // Kernels since 6.5 keep that interval while the backoff is at most
  // net.ipv4.tcp_syn_linear_timeouts (default 4), then double it; older kernels (no such
  // setting: 0) double from the second retransmit. Measured on 6.18 with the default 4:
  // retransmits at 1, 2, 3, 4, 5, 7, 11, 19 s; the classic series is 1, 3, 7, 15 s.
  std::vector<double> instants;
  double t = 0;
  for (int k = 1; k <= count; ++k) {
    t += k <= linear_timeouts + 1 ? 1.0 : std::ldexp(1.0, k - linear_timeouts - 1);
    instants.push_back(t);
  }
  return instants;
}

namespace {

std::string Esc(absl::string_view s) { return HtmlEscape(s); }

// A figure as people read it: integers without decimals, others with up to 4 significant digits.
std::string Num(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "inf" : "-inf");
  if (std::fabs(v - std::round(v)) < 1e-9 && std::fabs(v) < 1e15) {
    return absl::StrFormat("%.0f", v);
  }
  return absl::StrFormat("%.4g", v);
}

std::string C(double v) { return absl::StrFormat("%.1f", v); }

// Params in a stable order (protobuf maps have none).
std::vector<std::pair<std::string, std::string>> Params(const v1::Run& run) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : run.params()) out.emplace_back(k, FormatParamValue(v));
  std::sort(out.begin(), out.end());
  return out;
}

// "tcp_abort_on_overflow=1, tcp_syncookies=0": the last path segment keeps bar labels short;
// the full paths are in the tooltip and the run's header.
std::string ShortParams(const v1::Run& run) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : Params(run)) {
    const size_t dot = k.rfind('.');
    parts.push_back(absl::StrCat(dot == std::string::npos ? k : k.substr(dot + 1), "=", v));
  }
  return parts.empty() ? "(no sweep)" : absl::StrJoin(parts, ", ");
}

std::string LongParams(const v1::Run& run) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : Params(run)) parts.push_back(absl::StrCat(k, " = ", v));
  return absl::StrJoin(parts, "\n");
}

template <typename Map>
std::vector<std::string> SortedKeys(const Map& m) {
  std::vector<std::string> keys;
  for (const auto& [k, unused] : m) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Minimal SVG writer: every mark carries an optional tooltip (<title>), escaped.
class Svg {
 public:
  Svg(std::string cls, double width, double height) : cls_(std::move(cls)), w_(width), h_(height) {}

  void Rect(double x, double y, double w, double h, absl::string_view fill, absl::string_view cls,
            absl::string_view tip = {}, absl::string_view extra = {}) {
    absl::StrAppend(&body_, "<rect class=\"", cls, "\" x=\"", C(x), "\" y=\"", C(y), "\" width=\"",
                    C(w), "\" height=\"", C(h), "\" fill=\"", fill, "\"", extra);
    Close("rect", tip);
  }
  void Line(double x1, double y1, double x2, double y2, absl::string_view stroke,
            absl::string_view extra = {}) {
    absl::StrAppend(&body_, "<line x1=\"", C(x1), "\" y1=\"", C(y1), "\" x2=\"", C(x2), "\" y2=\"",
                    C(y2), "\" stroke=\"", stroke, "\"", extra, "/>");
  }
  void Text(double x, double y, absl::string_view text, absl::string_view anchor = "start",
            absl::string_view extra = {}) {
    absl::StrAppend(&body_, "<text x=\"", C(x), "\" y=\"", C(y), "\" text-anchor=\"", anchor, "\"",
                    extra, ">", Esc(text), "</text>");
  }
  void Path(absl::string_view d, absl::string_view stroke, absl::string_view cls,
            absl::string_view tip = {}, absl::string_view extra = {}) {
    absl::StrAppend(&body_, "<path class=\"", cls, "\" d=\"", d, "\" fill=\"none\" stroke=\"",
                    stroke, "\" stroke-width=\"2\"", extra);
    Close("path", tip);
  }
  std::string Done() const {
    return absl::StrCat("<svg class=\"plot ", cls_, "\" width=\"", C(w_), "\" height=\"", C(h_),
                        "\" viewBox=\"0 0 ", C(w_), " ", C(h_), "\" role=\"img\">", body_,
                        "</svg>");
  }

 private:
  void Close(absl::string_view tag, absl::string_view tip) {
    if (tip.empty()) {
      absl::StrAppend(&body_, "/>");
    } else {
      absl::StrAppend(&body_, "><title>", Esc(tip), "</title></", tag, ">");
    }
  }
  std::string cls_;
  double w_, h_;
  std::string body_;
};

struct Segment {
  std::string name;
  std::string color;
  double count;
};

std::string Legend(const std::vector<Segment>& segments) {
  std::string out = "<div class=\"legend\">";
  for (const auto& s : segments) {
    absl::StrAppend(&out, "<span><i style=\"background:", s.color, "\"></i>", Esc(s.name),
                    "</span>");
  }
  return absl::StrCat(out, "</div>");
}

// One horizontal stacked bar: segments scaled so that `full` fills `width`.
void StackedBar(Svg& svg, double x, double y, double width, double height, double full,
                const std::vector<Segment>& segments, absl::string_view what) {
  if (full <= 0) return;
  double at = x;
  for (const auto& s : segments) {
    if (s.count <= 0) continue;
    const double w = std::max(1.0, s.count / full * width);
    svg.Rect(at, y, w, height, s.color, "bar", absl::StrCat(what, ": ", s.name, " ", Num(s.count)));
    if (w >= 22) {
      svg.Text(at + w / 2, y + height / 2 + 4, Num(s.count), "middle", " class=\"on-bar\"");
    }
    at += w;
  }
}

std::vector<Segment> OutcomeSegments(double established, double reset, double refused,
                                     double timed_out, double errors) {
  return {{"established", kEstablished, established},
          {"reset", kReset, reset},
          {"refused", kRefused, refused},
          {"timed out", kTimedOut, timed_out},
          {"error", kError, errors}};
}

double ErrorCount(const v1::Flood& f) {
  double n = 0;
  for (const auto& [unused, c] : f.errors()) n += c;
  return n;
}

std::vector<Segment> FloodOutcomes(const v1::Flood& f) {
  return OutcomeSegments(f.established(), f.reset(), f.refused(), f.timed_out(), ErrorCount(f));
}

std::vector<Segment> FloodFates(const v1::Flood& f) {
  const v1::Fates& x = f.fates();
  return {{"accepted", kAccepted, static_cast<double>(x.accepted())},
          {"queued", kQueued, static_cast<double>(x.queued())},
          {"syn_recv", kSynRecv, static_cast<double>(x.syn_recv())},
          {"unknown_to_server", kUnknown, static_cast<double>(x.unknown_to_server())},
          {"established_unjoined", kUnjoined, static_cast<double>(x.established_unjoined())},
          {"reset", kReset, static_cast<double>(x.reset())},
          {"refused", kRefused, static_cast<double>(x.refused())},
          {"timed_out", kTimedOut, static_cast<double>(x.timed_out())},
          {"error", kError, static_cast<double>(x.error())}};
}

double Sum(const std::vector<Segment>& segments) {
  double n = 0;
  for (const auto& s : segments) n += s.count;
  return n;
}

// ---- sweep overview ----

std::string SweepOverview(const v1::Result& result) {
  std::string out = "<section class=\"sweep\"><h2>Sweep: outcomes per run</h2>";
  constexpr double kLabelW = 380, kBarW = 640, kRowH = 26, kTop = 10;
  double full = 0;
  std::vector<std::vector<Segment>> rows;
  for (const auto& run : result.runs()) {
    double est = 0, reset = 0, refused = 0, timed_out = 0, errors = 0;
    for (const auto& [unused, f] : run.floods()) {
      if (!f.group().empty() && f.members_size() == 0) continue;  // counted in its merged row
      est += f.established();
      reset += f.reset();
      refused += f.refused();
      timed_out += f.timed_out();
      errors += ErrorCount(f);
    }
    rows.push_back(OutcomeSegments(est, reset, refused, timed_out, errors));
    full = std::max(full, Sum(rows.back()));
  }
  Svg svg("sweep-outcomes", kLabelW + kBarW + 20, kTop + kRowH * rows.size() + 10);
  for (size_t i = 0; i < rows.size(); ++i) {
    const v1::Run& run = result.runs(static_cast<int>(i));
    const double y = kTop + kRowH * i;
    svg.Text(kLabelW - 8, y + kRowH / 2 + 4, absl::StrCat("#", run.index(), "  ", ShortParams(run)),
             "end");
    StackedBar(svg, kLabelW, y + 3, kBarW, kRowH - 6, full, rows[i],
               absl::StrCat("run ", run.index(), " (", LongParams(run), ")"));
  }
  absl::StrAppend(&out, Legend(rows.empty() ? std::vector<Segment>{} : rows[0]), svg.Done());

  // The same figures as a table, with each run's verdicts, linking to the run.
  absl::StrAppend(&out,
                  "<table><tr><th>run</th><th>params</th><th>established</th><th>reset</th>"
                  "<th>refused</th><th>timed out</th><th>error</th><th>expectations</th></tr>");
  for (size_t i = 0; i < rows.size(); ++i) {
    const v1::Run& run = result.runs(static_cast<int>(i));
    int passed = 0;
    for (const auto& e : run.expectations()) passed += e.passed() ? 1 : 0;
    const bool all = passed == run.expectations_size();
    absl::StrAppend(&out, "<tr><td><a href=\"#run-", run.index(), "\">#", run.index(),
                    "</a></td><td>", Esc(ShortParams(run)), "</td>");
    for (const auto& s : rows[i]) absl::StrAppend(&out, "<td class=\"n\">", Num(s.count), "</td>");
    absl::StrAppend(&out, "<td class=\"",
                    run.expectations_size() == 0 ? "" : (all ? "pass" : "fail"), "\">",
                    run.expectations_size() == 0
                        ? std::string("none")
                        : absl::StrCat(passed, " of ", run.expectations_size(), " passed"),
                    "</td></tr>");
  }
  return absl::StrCat(out, "</table></section>");
}

// ---- run header and verdicts ----

std::string Optional(bool has, double v, absl::string_view unit) {
  return has ? absl::StrCat(Num(v), " ", unit) : "<span class=\"muted\">not observed</span>";
}

std::string RunHeader(const v1::Run& run) {
  std::string out = "<table class=\"kv\">";
  for (const auto& [k, v] : Params(run)) {
    absl::StrAppend(&out, "<tr><th>", Esc(k), "</th><td>", Esc(v), "</td></tr>");
  }
  absl::StrAppend(
      &out, "<tr><th>run id</th><td>", Esc(run.run_id()), "</td></tr>",
      "<tr><th>start skew</th><td>", Optional(run.has_start_skew_ms(), run.start_skew_ms(), "ms"),
      "</td></tr>", "<tr><th>start lateness</th><td>",
      Optional(run.has_start_lateness_ms(), run.start_lateness_ms(), "ms"), "</td></tr>");
  if (run.duration_ms() > 0) {
    absl::StrAppend(&out, "<tr><th>duration</th><td>", Num(run.duration_ms()), " ms</td></tr>");
  }
  absl::StrAppend(&out, "</table>");
  if (run.errors_size() > 0) {
    absl::StrAppend(&out, "<div class=\"errors\"><b>Errors (the run's data is partial)</b><ul>");
    for (const auto& e : run.errors()) absl::StrAppend(&out, "<li>", Esc(e), "</li>");
    absl::StrAppend(&out, "</ul></div>");
  }
  if (run.not_observed_size() > 0) {
    absl::StrAppend(&out, "<p class=\"muted\">Not observed: ");
    std::vector<std::string> items;
    for (const auto& n : run.not_observed()) items.push_back(Esc(n));
    absl::StrAppend(&out, absl::StrJoin(items, "; "), "</p>");
  }
  return out;
}

std::string PassFail(bool passed) {
  return passed ? "<td class=\"pass\">pass</td>" : "<td class=\"fail\">FAIL</td>";
}

std::string Expectations(const v1::Run& run) {
  if (run.expectations_size() == 0) return "";
  std::string out =
      "<h3>Expectations</h3><table class=\"expectations\"><tr><th>expectation</th><th>result</th>"
      "<th>evaluated</th></tr>";
  for (const auto& e : run.expectations()) {
    std::vector<std::string> detail;
    for (const auto& c : e.comparisons()) {
      detail.push_back(absl::StrCat(Esc(c.left()), " = ", Num(c.left_value()), " ", Esc(c.op()),
                                    " ", Esc(c.right()), " = ", Num(c.right_value()),
                                    c.passed() ? "" : " (false)"));
    }
    if (!e.error().empty()) detail.push_back(absl::StrCat("error: ", Esc(e.error())));
    std::vector<std::string> values;
    for (const auto& k : SortedKeys(e.values())) {
      values.push_back(absl::StrCat(Esc(k), " = ", Num(e.values().at(k))));
    }
    if (!values.empty()) {
      detail.push_back(
          absl::StrCat("<span class=\"muted\">", absl::StrJoin(values, ", "), "</span>"));
    }
    absl::StrAppend(&out, "<tr><td><code>", Esc(e.expression()), "</code></td>",
                    PassFail(e.passed()), "<td>", absl::StrJoin(detail, "<br>"), "</td></tr>");
  }
  return absl::StrCat(out, "</table>");
}

std::string Diagnosis(const v1::Run& run) {
  if (run.diagnosis_size() == 0) return "";
  std::string out = "<h3>Diagnosis</h3><ul class=\"diagnosis\">";
  for (const auto& f : run.diagnosis()) {
    absl::StrAppend(&out, "<li><p>", Esc(f.text()), "</p>");
    if (!f.remedy().empty()) {
      absl::StrAppend(&out, "<p class=\"remedy\">What would change it: ", Esc(f.remedy()), "</p>");
    }
    std::vector<std::string> ev;
    for (const auto& e : f.evidence())
      ev.push_back(absl::StrCat(Esc(e.name()), " = ", Num(e.value())));
    if (!f.rule().empty()) ev.insert(ev.begin(), absl::StrCat("rule ", Esc(f.rule())));
    if (!ev.empty()) {
      absl::StrAppend(&out, "<p class=\"muted\">", absl::StrJoin(ev, "; "), "</p>");
    }
    absl::StrAppend(&out, "</li>");
  }
  return absl::StrCat(out, "</ul>");
}

std::string Baseline(const v1::Run& run) {
  if (!run.has_baseline()) return "";
  const v1::BaselineComparison& b = run.baseline();
  std::string out = absl::StrCat(
      "<h3>Baseline</h3><p>", Esc(b.file()), ": ",
      b.baseline_run_index() < 0 ? std::string("no run with the same params")
                                 : absl::StrCat("run #", b.baseline_run_index()),
      " &mdash; ", b.passed() ? "<b class=\"pass\">pass</b>" : "<b class=\"fail\">FAIL</b>",
      "</p>");
  if (b.checks_size() == 0) return out;
  absl::StrAppend(&out,
                  "<table><tr><th>field</th><th>baseline</th><th>current</th><th>tolerance</th>"
                  "<th>result</th><th>note</th></tr>");
  for (const auto& c : b.checks()) {
    absl::StrAppend(&out, "<tr><td><code>", Esc(c.field()), "</code></td><td class=\"n\">",
                    Num(c.baseline()), "</td><td class=\"n\">", Num(c.current()),
                    "</td><td class=\"n\">", Num(c.tolerance_percent()), "%</td>",
                    PassFail(c.passed()), "<td>", Esc(c.note()), "</td></tr>");
  }
  return absl::StrCat(out, "</table>");
}

// ---- outcomes per flood ----

std::string OutcomesSection(const v1::Run& run) {
  if (run.floods().empty()) return "";
  constexpr double kLabelW = 170, kBarW = 700, kRowH = 24;
  double full = 0;
  for (const auto& [unused, f] : run.floods()) {
    full = std::max(
        {full, Sum(FloodOutcomes(f)), Sum(FloodFates(f)), static_cast<double>(f.attempted())});
  }
  const std::vector<std::string> names = SortedKeys(run.floods());
  Svg svg("flood-outcomes", kLabelW + kBarW + 20, 2 * kRowH * names.size() + 14);
  double y = 6;
  for (const auto& name : names) {
    const v1::Flood& f = run.floods().at(name);
    svg.Text(kLabelW - 8, y + kRowH / 2 + 4, absl::StrCat(name, " outcomes"), "end");
    StackedBar(svg, kLabelW, y + 2, kBarW, kRowH - 4, full, FloodOutcomes(f),
               absl::StrCat(name, " outcome"));
    y += kRowH;
    svg.Text(kLabelW - 8, y + kRowH / 2 + 4, absl::StrCat(name, " fates"), "end");
    StackedBar(svg, kLabelW, y + 2, kBarW, kRowH - 4, full, FloodFates(f),
               absl::StrCat(name, " fate"));
    y += kRowH;
  }
  std::string out =
      absl::StrCat("<h3>Outcomes and fates per flood</h3>", Legend(FloodOutcomes(v1::Flood())),
                   Legend(FloodFates(v1::Flood())), svg.Done());
  absl::StrAppend(&out,
                  "<table><tr><th>flood</th><th>host</th><th>target</th><th>attempted</th>"
                  "<th>established</th><th>reset</th><th>refused</th><th>timed out</th>"
                  "<th>errors</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th>"
                  "<th>start lateness</th></tr>");
  for (const auto& name : names) {
    const v1::Flood& f = run.floods().at(name);
    std::vector<std::string> errors;
    for (const auto& k : SortedKeys(f.errors())) {
      errors.push_back(absl::StrCat(Esc(k), " ", f.errors().at(k)));
    }
    const v1::LatencySummary& l = f.connect_latency_ms();
    absl::StrAppend(
        &out, "<tr><td>", Esc(name), "</td><td>", Esc(f.host()),
        // Named only when not the usual io_uring: an agent that fell back to epoll.
        f.engine().empty() || f.engine() == "io_uring"
            ? ""
            : absl::StrCat("<br><span class=\"muted\">engine ", Esc(f.engine()), "</span>"),
        "</td><td>",
        Esc(f.listener().empty() ? f.target() : absl::StrCat(f.listener(), " (", f.target(), ")")),
        "</td><td class=\"n\">", f.attempted(), "</td><td class=\"n\">", f.established(),
        "</td><td class=\"n\">", f.reset(), "</td><td class=\"n\">", f.refused(),
        "</td><td class=\"n\">", f.timed_out(), "</td><td>", absl::StrJoin(errors, ", "),
        f.server_observed()
            ? ""
            : "<br><span class=\"muted\">fates not_observed: no agent watched the server</span>",
        "</td>");
    for (double v : {l.p50(), l.p90(), l.p99(), l.max()}) {
      absl::StrAppend(&out, "<td class=\"n\">", l.count() > 0 ? Num(v) : "", "</td>");
    }
    absl::StrAppend(&out, "<td>", Optional(f.has_start_lateness_ms(), f.start_lateness_ms(), "ms"),
                    "</td></tr>");
  }
  return absl::StrCat(out, "</table>");
}

// ---- connect-latency histogram on a log time axis ----

std::string TimeLabel(double us) {
  if (us >= 1e6) return absl::StrCat(Num(us / 1e6), " s");
  if (us >= 1e3) return absl::StrCat(Num(us / 1e3), " ms");
  return absl::StrCat(Num(us), " \xC2\xB5s");
}

std::string LatencyHistogram(const std::string& name, const v1::Flood& f, int syn_linear_timeouts) {
  const v1::Histogram& proto = f.connect_latency_histogram();
  std::string out = absl::StrCat("<h4>", Esc(name), ": connect latency</h4>");
  std::map<uint32_t, uint64_t> buckets;
  for (const auto& [index, n] : proto.buckets()) {
    if (n > 0) buckets[index] = n;
  }
  if (buckets.empty() && f.reset_after_ms().empty() && f.timed_out_after_ms().empty()) {
    return absl::StrCat(out, "<p class=\"muted\">no connection completed</p>");
  }
  // Bucket index -> value range in microseconds: the histogram's own layout.
  const common::Histogram layout(proto.sub_bucket_bits());

  double min_us = 1e12, max_us = 0;
  uint64_t max_count = 0;
  for (const auto& [index, n] : buckets) {
    min_us = std::min(min_us, static_cast<double>(layout.BucketLower(index)));
    max_us = std::max(max_us, static_cast<double>(layout.BucketUpper(index)) + 1);
    max_count = std::max(max_count, n);
  }
  for (double ms : f.reset_after_ms()) max_us = std::max(max_us, ms * 1000);
  for (double ms : f.timed_out_after_ms()) max_us = std::max(max_us, ms * 1000);
  // The axis always spans 100 us .. 10 s, so that the 1 s / 3 s / 7 s bands are always drawn.
  const double lo =
      std::max(1.0, std::min(100.0, std::pow(10, std::floor(std::log10(std::max(1.0, min_us))))));
  const double hi = std::max(1e7, max_us * 1.25);

  constexpr double kLeft = 70, kTop = 22, kPlotW = 1000, kPlotH = 180;
  const double strip_top = kTop + kPlotH + 26;  // reset / timed-out ticks below the axis labels
  Svg svg("latency-histogram", kLeft + kPlotW + 30, strip_top + 44);
  const double llo = std::log10(lo), lhi = std::log10(hi);
  auto x = [&](double us) {
    const double l = std::log10(std::max(us, lo));
    return kLeft + (std::min(l, lhi) - llo) / (lhi - llo) * kPlotW;
  };
  const double bottom = kTop + kPlotH;

  // SYN-retransmit instants: a shaded band from the instant to +25% (one RTT on most paths),
  // where connects that needed k retransmits land.
  std::vector<double> labelled;
  int k = 0;
  for (double s : SynRetransmitSeconds(syn_linear_timeouts, 8)) {
    ++k;
    const double us = s * 1e6;
    if (us >= hi) break;
    const double x0 = x(us), x1 = x(us * 1.25);
    svg.Rect(x0, kTop, x1 - x0, kPlotH, kBand, "retransmit-band",
             absl::StrCat("SYN retransmit ", k, " leaves at ", Num(s), " s (initial RTO 1 s, ",
                          syn_linear_timeouts, " linear, then doubling)"),
             " fill-opacity=\"0.3\"");
    svg.Line(x0, kTop, x0, bottom, kBand, " stroke-width=\"1.5\"");
    // Bands 1 s apart sit close on a log axis: the first is named, the others numbered.
    svg.Text(x0 + 2, kTop - 6, k == 1 ? std::string("retx 1") : absl::StrCat(k), "start",
             " class=\"band-label\"");
    svg.Text(x0, bottom + 16, TimeLabel(us), "middle", " class=\"axis-label\"");
    labelled.push_back(x0);
  }
  // Decade gridlines, labelled unless a retransmit label already sits there.
  for (double d = lo; d <= hi * 1.0001; d *= 10) {
    const double xd = x(d);
    svg.Line(xd, kTop, xd, bottom, "#d0d0d0", " class=\"grid\"");
    const bool crowded = std::any_of(labelled.begin(), labelled.end(),
                                     [&](double xl) { return std::fabs(xl - xd) < 36; });
    if (!crowded) svg.Text(xd, bottom + 16, TimeLabel(d), "middle", " class=\"axis-label\"");
  }
  svg.Line(kLeft, bottom, kLeft + kPlotW, bottom, "#333");
  svg.Line(kLeft, kTop, kLeft, bottom, "#333");
  svg.Text(kLeft - 6, kTop + 10, Num(static_cast<double>(max_count)), "end",
           " class=\"axis-label\"");
  svg.Text(kLeft - 6, bottom, "0", "end", " class=\"axis-label\"");

  for (const auto& [index, n] : buckets) {
    const double lower = static_cast<double>(layout.BucketLower(index));
    const double upper = static_cast<double>(layout.BucketUpper(index));
    const double x0 = x(lower), x1 = x(upper + 1);
    const double w = std::max(4.0, x1 - x0);
    const double h =
        std::max(2.0, static_cast<double>(n) / static_cast<double>(max_count) * kPlotH);
    svg.Rect(x0, bottom - h, w, h, kHistBar, "hist-bar",
             absl::StrCat(n, " connected in ", TimeLabel(lower), " .. ", TimeLabel(upper + 1)));
  }

  // When resets and timeouts were decided, on the same axis.
  auto ticks = [&](const auto& list, double y, const char* color, const char* what) {
    svg.Text(kLeft - 6, y + 9, what, "end", " class=\"axis-label\"");
    for (double ms : list) {
      svg.Rect(x(ms * 1000) - 1.5, y, 3, 12, color, "outcome-tick",
               absl::StrCat(what, " after ", Num(ms), " ms"));
    }
  };
  ticks(f.reset_after_ms(), strip_top, kReset, "reset");
  ticks(f.timed_out_after_ms(), strip_top + 18, kTimedOut, "timed out");

  return absl::StrCat(out, svg.Done(),
                      "<p class=\"caption\">Connects per histogram bucket on a log time axis; "
                      "shaded: the SYN-retransmit instants (initial RTO 1 s; linear for the first "
                      "net.ipv4.tcp_syn_linear_timeouts retransmits where the kernel has it, "
                      "doubling). Ticks below: when resets and timeouts were decided.</p>");
}

// ---- series over time ----

using Series = std::vector<std::pair<double, double>>;  // (t_ms, value), sorted by t

// A step line only needs the points where the value changes (and the last one, where it ends);
// beyond that, at most kMaxSeriesPoints points: per time bin, the point with the largest value.
Series Downsample(const Series& all) {
  Series in;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i == 0 || i + 1 == all.size() || all[i].second != all[i - 1].second) in.push_back(all[i]);
  }
  if (in.size() <= kMaxSeriesPoints) return in;
  const double t0 = in.front().first, t1 = in.back().first;
  const double span = std::max(t1 - t0, 1e-9);
  std::vector<int> best(kMaxSeriesPoints, -1);
  for (size_t i = 0; i < in.size(); ++i) {
    const size_t bin = std::min(kMaxSeriesPoints - 1,
                                static_cast<size_t>((in[i].first - t0) / span * kMaxSeriesPoints));
    if (best[bin] < 0 || in[i].second > in[static_cast<size_t>(best[bin])].second) {
      best[bin] = static_cast<int>(i);
    }
  }
  Series out;
  for (int i : best) {
    if (i >= 0) out.push_back(in[static_cast<size_t>(i)]);
  }
  return out;
}

struct TimeAxis {
  double t0, t1, left, width;
  double X(double t) const { return left + (t - t0) / std::max(t1 - t0, 1e-9) * width; }
};

// A step line (values hold until the next sample).
std::string StepPath(const Series& s, const TimeAxis& ax, double bottom, double height,
                     double vmax) {
  std::string d;
  double prev_y = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const double px = ax.X(s[i].first);
    const double py = bottom - s[i].second / vmax * height;
    if (i == 0) {
      absl::StrAppend(&d, "M", C(px), " ", C(py));
    } else {
      absl::StrAppend(&d, " H", C(px), " V", C(py));
    }
    prev_y = py;
  }
  (void)prev_y;
  return d;
}

void TimeAxisMarks(Svg& svg, const TimeAxis& ax, double top, double bottom) {
  const double span = ax.t1 - ax.t0;
  double step = 1;
  for (double s : {1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
                   10000.0, 20000.0, 50000.0, 100000.0, 300000.0, 600000.0}) {
    step = s;
    if (span / s <= 10) break;
  }
  for (double t = std::ceil(ax.t0 / step) * step; t <= ax.t1 + 1e-9; t += step) {
    if (std::fabs(t) < step / 2) t = 0;  // no "-0 s"
    const double px = ax.X(t);
    svg.Line(px, top, px, bottom, "#e0e0e0", " class=\"grid\"");
    svg.Text(
        px, bottom + 14,
        t >= 1000 || step >= 1000 ? absl::StrCat(Num(t / 1000), " s") : absl::StrCat(Num(t), " ms"),
        "middle", " class=\"axis-label\"");
  }
  svg.Line(ax.left, bottom, ax.left + ax.width, bottom, "#333");
  svg.Line(ax.left, top, ax.left, bottom, "#333");
}

TimeAxis RunTimeAxis(const v1::Run& run, double left, double width) {
  double t0 = 0, t1 = 1;
  bool first = true;
  for (const auto& s : run.samples()) {
    if (first) {
      t0 = std::min(0.0, s.t_ms());
      t1 = s.t_ms();
      first = false;
    }
    t0 = std::min(t0, s.t_ms());
    t1 = std::max(t1, s.t_ms());
  }
  if (t1 <= t0) t1 = t0 + 1;
  return {t0, t1, left, width};
}

// Each host's samples, in order, found in one pass: a fleet run has a thousand hosts and tens of
// thousands of samples, and a scan of every sample per host and counter was quadratic.
std::map<std::string, std::vector<const v1::Sample*>> SamplesByHost(const v1::Run& run) {
  std::map<std::string, std::vector<const v1::Sample*>> by_host;
  for (const auto& s : run.samples()) by_host[s.host()].push_back(&s);
  return by_host;
}

std::string ListenerQueues(const v1::Run& run) {
  if (run.listeners().empty()) return "";
  std::string out =
      "<h3>Listeners</h3><table><tr><th>listener</th><th>host</th><th>address</th>"
      "<th>accept</th><th>backlog</th><th>backlog effective</th><th>accept queue peak</th>"
      "<th>accepted</th></tr>";
  const std::vector<std::string> names = SortedKeys(run.listeners());
  for (const auto& name : names) {
    const v1::Listener& l = run.listeners().at(name);
    std::string mode =
        l.accept() == v1::ACCEPT_MODE_UNSPECIFIED ? "" : v1::AcceptMode_Name(l.accept());
    if (mode.rfind("ACCEPT_MODE_", 0) == 0) mode = mode.substr(12);
    std::transform(mode.begin(), mode.end(), mode.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (l.accept() == v1::ACCEPT_MODE_PACED && l.accept_rate() > 0) {
      absl::StrAppend(&mode, " ", Num(l.accept_rate()), "/s");
    } else if (l.accept() == v1::ACCEPT_MODE_PACED) {
      absl::StrAppend(&mode, " every ", Num(l.accept_interval_ms()), " ms");
    }
    // A listener synq did not start: its owner accepts; what it gave listen() is not known.
    if (l.observed()) {
      mode = absl::StrCat("observed: ", l.owner().empty() ? "owner not found" : l.owner());
    }
    const std::string backlog = l.observed() ? "not_observed" : absl::StrCat(l.backlog());
    absl::StrAppend(&out, "<tr><td>", Esc(name), "</td><td>", Esc(l.host()), "</td><td>",
                    Esc(l.address()), "</td><td>", Esc(mode), "</td><td class=\"n\">", backlog,
                    "</td><td class=\"n\">", l.backlog_effective(), "</td><td class=\"n\">",
                    l.accept_queue_peak(), "</td><td class=\"n\">", l.accepted(), "</td></tr>");
  }
  absl::StrAppend(&out, "</table>");

  constexpr double kLeft = 50, kTop = 12, kPlotW = 1000, kPlotH = 150;
  const TimeAxis ax = RunTimeAxis(run, kLeft, kPlotW);
  auto by_host = SamplesByHost(run);
  for (const auto& name : names) {
    const v1::Listener& l = run.listeners().at(name);
    Series queue, syn_recv, queue_max;
    for (const v1::Sample* sample : by_host[l.host()]) {  // empty when the host sent none
      const v1::Sample& s = *sample;
      auto it = s.listeners().find(name);
      if (it == s.listeners().end()) continue;
      queue.emplace_back(s.t_ms(), it->second.accept_queue());
      syn_recv.emplace_back(s.t_ms(), it->second.syn_recv());
      queue_max.emplace_back(s.t_ms(), it->second.accept_queue_max());
    }
    absl::StrAppend(&out, "<h4>", Esc(name), ": accept queue and SYN-RECV over time</h4>");
    if (queue.empty()) {
      absl::StrAppend(&out, "<p class=\"muted\">no samples of this listener</p>");
      continue;
    }
    queue = Downsample(queue);
    syn_recv = Downsample(syn_recv);
    queue_max = Downsample(queue_max);
    double vmax = 1;
    for (const Series* s : {&queue, &syn_recv, &queue_max}) {
      for (const auto& p : *s) vmax = std::max(vmax, p.second);
    }
    vmax = std::ceil(vmax * 1.15);
    const double bottom = kTop + kPlotH;
    Svg svg("queue-plot", kLeft + kPlotW + 30, bottom + 24);
    TimeAxisMarks(svg, ax, kTop, bottom);
    svg.Text(kLeft - 6, kTop + 10, Num(vmax), "end", " class=\"axis-label\"");
    svg.Text(kLeft - 6, bottom, "0", "end", " class=\"axis-label\"");
    svg.Path(StepPath(queue_max, ax, bottom, kPlotH, vmax), kQueueMaxLine, "queue-max",
             "accept queue max (backlog effective)", " stroke-dasharray=\"6 4\"");
    svg.Path(StepPath(syn_recv, ax, bottom, kPlotH, vmax), kSynRecvLine, "syn-recv",
             "SYN-RECV requests");
    svg.Path(StepPath(queue, ax, bottom, kPlotH, vmax), kQueueLine, "accept-queue",
             "accept queue depth");
    absl::StrAppend(&out,
                    Legend({{"accept queue", kQueueLine, 0},
                            {"SYN-RECV", kSynRecvLine, 0},
                            {"accept queue max (backlog effective)", kQueueMaxLine, 0}}),
                    svg.Done());
  }
  return out;
}

std::string CounterPlots(const v1::Run& run) {
  std::string out = "<h3>Handshake counters over time (deltas since the run began)</h3>";
  const auto by_host = SamplesByHost(run);
  if (by_host.empty()) return absl::StrCat(out, "<p class=\"muted\">no samples</p>");
  constexpr double kLeft = 40, kTop = 22, kPlotW = 300, kPlotH = 70;
  const TimeAxis ax = RunTimeAxis(run, kLeft, kPlotW);
  for (const auto& [host, samples] : by_host) {
    absl::StrAppend(&out, "<h4>", Esc(host), "</h4><div class=\"multiples\">");
    int drawn = 0;
    for (const auto& [counter, compared] : kHandshakeCounters) {
      Series series;
      double vmax = 0;
      for (const v1::Sample* sample : samples) {
        const v1::Sample& s = *sample;
        auto it = s.counters().find(counter);
        const double v = it == s.counters().end() ? 0 : it->second;
        series.emplace_back(s.t_ms(), v);
        vmax = std::max(vmax, v);
      }
      if (vmax <= 0) continue;  // did not move
      ++drawn;
      series = Downsample(series);
      const double bottom = kTop + kPlotH;
      Svg svg("counter-plot", kLeft + kPlotW + 20, bottom + 22);
      svg.Text(kLeft, 14, counter, "start", " class=\"plot-title\"");
      TimeAxisMarks(svg, ax, kTop, bottom);
      svg.Text(kLeft - 4, kTop + 10, Num(vmax), "end", " class=\"axis-label\"");
      svg.Text(kLeft - 4, bottom, "0", "end", " class=\"axis-label\"");
      svg.Path(StepPath(series, ax, bottom, kPlotH, vmax * 1.1), kCounterLine, "counter-line",
               absl::StrCat(counter, ": ", Num(series.back().second), " at the last sample"));
      absl::StrAppend(&out, svg.Done());
    }
    absl::StrAppend(&out, "</div>");
    if (drawn == 0) absl::StrAppend(&out, "<p class=\"muted\">no handshake counter moved</p>");
  }
  return out;
}

// ---- hosts ----

std::string Hosts(const v1::Run& run) {
  std::string out = "<h3>Hosts: kernel, settings and shaping in force</h3>";
  for (const auto& name : SortedKeys(run.hosts())) {
    const v1::Host& h = run.hosts().at(name);
    absl::StrAppend(&out, "<div class=\"host\"><h4>", Esc(name), "</h4><table class=\"kv\">",
                    "<tr><th>kernel</th><td>", Esc(h.kernel()),
                    "</td></tr><tr><th>hostname</th><td>", Esc(h.hostname()),
                    "</td></tr><tr><th>agent</th><td>", Esc(h.agent()),
                    "</td></tr><tr><th>address</th><td>", Esc(h.address()),
                    "</td></tr><tr><th>clock offset</th><td>",
                    Optional(h.has_clock_offset_ms(), h.clock_offset_ms(), "ms"), "</td></tr>");
    if (!h.error().empty()) {
      absl::StrAppend(&out, "<tr><th>error</th><td class=\"fail\">", Esc(h.error()), "</td></tr>");
    }
    absl::StrAppend(&out, "</table>");
    if (!h.settings().empty()) {
      const std::set<std::string> changed(h.changed_settings().begin(), h.changed_settings().end());
      absl::StrAppend(&out, "<table><tr><th>setting</th><th>value</th></tr>");
      for (const auto& k : SortedKeys(h.settings())) {
        const bool c = changed.count(k) > 0;
        absl::StrAppend(&out, "<tr", c ? " class=\"changed\"" : "", "><td>", Esc(k),
                        c ? " <small>(set by the scenario)</small>" : "", "</td><td class=\"n\">",
                        h.settings().at(k), "</td></tr>");
      }
      absl::StrAppend(&out, "</table>");
    }
    if (h.shaping_size() > 0) {
      absl::StrAppend(&out,
                      "<table><tr><th>shaping on</th><th>to</th><th>backend</th><th>delay ms</th>"
                      "<th>jitter ms</th><th>loss %</th><th>rate bit/s</th></tr>");
      for (const auto& s : h.shaping()) {
        absl::StrAppend(&out, "<tr><td>", Esc(s.interface()), "</td><td>", Esc(s.destination()),
                        "</td><td>", Esc(s.backend()), "</td><td class=\"n\">", Num(s.delay_ms()),
                        "</td><td class=\"n\">", Num(s.jitter_ms()), "</td><td class=\"n\">",
                        Num(s.loss_percent()), "</td><td class=\"n\">",
                        s.rate_bits_per_second() > 0 ? Num(s.rate_bits_per_second()) : "",
                        "</td></tr>");
      }
      absl::StrAppend(&out, "</table>");
    } else {
      absl::StrAppend(&out, "<p class=\"muted\">no shaping</p>");
    }
    if (h.has_packets() && (!h.packets().interface().empty() || !h.packets().error().empty())) {
      const v1::Packets& p = h.packets();
      if (!p.error().empty()) {
        absl::StrAppend(&out, "<p class=\"muted\">packets: ", Esc(p.error()), "</p>");
      } else {
        auto row = [](const char* dir, const v1::PacketCounts& c) {
          return absl::StrCat("<tr><td>", dir, "</td><td class=\"n\">", c.syn(),
                              "</td><td class=\"n\">", c.syn_retransmit(), "</td><td class=\"n\">",
                              c.synack(), "</td><td class=\"n\">", c.synack_retransmit(),
                              "</td><td class=\"n\">", c.pure_ack(), "</td><td class=\"n\">",
                              c.rst(), "</td><td class=\"n\">", c.total(), "</td></tr>");
        };
        absl::StrAppend(&out, "<table><tr><th>packets on ", Esc(p.interface()),
                        "</th><th>SYN</th><th>SYN retx</th><th>SYN-ACK</th><th>SYN-ACK retx</th>"
                        "<th>pure ACK</th><th>RST</th><th>total</th></tr>",
                        row("to server", p.to_server()), row("from server", p.from_server()),
                        "</table>");
      }
    }
    std::vector<std::string> moved;
    for (const auto& k : SortedKeys(h.counters())) {
      if (h.counters().at(k) != 0)
        moved.push_back(absl::StrCat(Esc(k), " ", Num(h.counters().at(k))));
    }
    if (!moved.empty()) {
      absl::StrAppend(&out, "<details><summary>counters that moved (", moved.size(),
                      ")</summary><p class=\"counters\">", absl::StrJoin(moved, ", "),
                      "</p></details>");
    }
    absl::StrAppend(&out, "</div>");
  }
  return out;
}

std::string RunSection(const v1::Run& run) {
  std::string out = absl::StrCat("<section class=\"run\" id=\"run-", run.index(), "\"><h2>Run #",
                                 run.index(), ": ", Esc(ShortParams(run)), "</h2>");
  absl::StrAppend(&out, RunHeader(run), Expectations(run), Diagnosis(run), Baseline(run),
                  search::RenderSearchHtml(run), OutcomesSection(run));
  if (!run.floods().empty()) absl::StrAppend(&out, "<h3>Connect latency</h3>");
  for (const auto& name : SortedKeys(run.floods())) {
    // The retransmit instants depend on the flooding host's kernel (linear SYN timeouts).
    const v1::Flood& flood = run.floods().at(name);
    int linear = 0;
    if (auto h = run.hosts().find(flood.host()); h != run.hosts().end()) {
      auto it = h->second.settings().find("net.ipv4.tcp_syn_linear_timeouts");
      if (it != h->second.settings().end()) linear = it->second;
    }
    absl::StrAppend(&out, LatencyHistogram(name, flood, linear), FloodSeriesChart(name, flood));
  }
  absl::StrAppend(&out, ListenerQueues(run), CounterPlots(run), Hosts(run), "</section>");
  return out;
}

constexpr char kStyle[] = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:19px;border-bottom:2px solid #ccc;padding-bottom:4px;margin-top:36px}
h3{font-size:16px;margin-top:22px}h4{font-size:14px;margin:14px 0 4px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:320px}.pass{color:#1b5e20;font-weight:600}.fail{color:#b71c1c;font-weight:700}
.muted{color:#777}.errors{background:#fdecea;border:1px solid #f5c6cb;padding:4px 10px;margin:6px 0}
.remedy{margin:2px 0 0 0;color:#0d47a1}.diagnosis li{margin-bottom:8px}.diagnosis p{margin:0}
tr.changed td{background:#fff8e1}.legend span{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
svg.plot{display:block;margin:4px 0}svg text{font-size:11px;fill:#333}svg text.on-bar{fill:#fff;font-weight:600}
svg text.band-label{fill:#8d6e00}svg text.plot-title{font-weight:600}
.multiples{display:flex;flex-wrap:wrap;gap:6px}.multiples svg{border:1px solid #eee}
.caption{color:#555;font-size:12px;margin:0 0 8px}.counters{font-size:12px}
)css";

}  // namespace

std::string RenderHtmlReport(const v1::Result& result) {
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>synq report: ",
      Esc(result.scenario()), "</title><style>", kStyle, "</style></head><body>");
  absl::StrAppend(&out, "<h1>synq report: ", Esc(result.scenario()), "</h1><p class=\"muted\">",
                  Esc(result.file()), " &middot; ", result.runs_size(),
                  result.runs_size() == 1 ? " run" : " runs");
  if (!result.synq_version().empty()) {
    absl::StrAppend(&out, " &middot; synq ", Esc(result.synq_version()));
  }
  if (!result.baseline_file().empty()) {
    absl::StrAppend(&out, " &middot; baseline ", Esc(result.baseline_file()));
  }
  absl::StrAppend(&out, "</p>");
  if (result.runs_size() > 1) absl::StrAppend(&out, SweepOverview(result));
  for (const auto& run : result.runs()) absl::StrAppend(&out, RunSection(run));
  absl::StrAppend(&out, "</body></html>\n");
  return out;
}

}  // namespace synq::controller::result
