#include "controller/search/search_render.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controller/result/escape.h"
#include "controller/result/format.h"

namespace synq::controller::search {
namespace {

namespace rv1 = ::synq::result::v1;
using result::FormatNumber;
using result::HtmlEscape;

std::string Drops(const rv1::SearchTrial& t) {
  return t.has_server_drops() ? FormatNumber(t.server_drops()) : "n/o";
}

std::string Header(const rv1::Search& s) {
  std::string criterion = s.criterion();
  if (s.criterion() == "pdr") absl::StrAppend(&criterion, " ", FormatNumber(s.loss_percent()), "%");
  return absl::StrCat(
      "search ", s.flood(), " (", criterion, ", trial ", FormatNumber(s.trial_ms()),
      " ms, precision ", FormatNumber(s.precision()), "/s): ",
      s.has_knee_rate() ? absl::StrCat("knee ", FormatNumber(s.knee_rate()), "/s") : "no knee",
      " in ", s.trials_size(), " trials, ", FormatNumber(s.search_ms() / 1000), " s");
}

std::string ModelLine(const rv1::QueueModel& m) {
  if (!m.has_predicted_rate()) return absl::StrCat("model: no prediction: ", m.note());
  return absl::StrCat("model: predicted ", FormatNumber(m.predicted_rate()), "/s",
                      m.has_error_percent() ? absl::StrFormat(", error %+.2f%%", m.error_percent())
                                            : std::string(", error not_observed (no knee)"));
}

}  // namespace

std::string RenderSearchTable(const rv1::Run& run) {
  if (!run.has_search()) return "";
  const rv1::Search& s = run.search();
  std::string out = absl::StrCat("  ", Header(s), "\n    ", ModelLine(s.model()), "\n");
  if (!s.note().empty()) absl::StrAppend(&out, "    note: ", s.note(), "\n");
  absl::StrAppend(
      &out, absl::StrFormat("    %3s %-8s %9s %-4s %6s %6s %6s %7s %7s %6s %6s %7s  %s\n", "#",
                            "phase", "rate/s", "", "tried", "estab", "reset", "refused", "timeout",
                            "errors", "drops", "loss%", "reason"));
  for (int i = 0; i < s.trials_size(); ++i) {
    const rv1::SearchTrial& t = s.trials(i);
    absl::StrAppend(
        &out, absl::StrFormat("    %3d %-8s %9s %-4s %6d %6d %6d %7d %7d %6d %6s %7s  %s\n", i + 1,
                              t.phase(), FormatNumber(t.rate()), t.passed() ? "pass" : "FAIL",
                              t.attempted(), t.established(), t.reset(), t.refused(), t.timed_out(),
                              t.errors(), Drops(t), FormatNumber(t.loss_percent()), t.reason()));
  }
  return out;
}

std::string RenderSearchHtml(const rv1::Run& run) {
  if (!run.has_search()) return "";
  const rv1::Search& s = run.search();
  const rv1::QueueModel& m = s.model();
  std::string out = absl::StrCat("<h3>Knee search</h3><p><b>", HtmlEscape(Header(s)), "</b><br>",
                                 HtmlEscape(ModelLine(m)), "</p>");
  if (!m.statement().empty()) {
    absl::StrAppend(&out, "<p class=\"caption\">", HtmlEscape(m.statement()), "</p>");
  }
  if (!s.note().empty()) absl::StrAppend(&out, "<p class=\"muted\">", HtmlEscape(s.note()), "</p>");

  // Chart: one dot per trial (x: order, y: rate), the knee and the prediction as lines.
  double top = 0;
  for (const auto& t : s.trials()) top = std::max(top, t.rate());
  if (m.has_predicted_rate()) top = std::max(top, m.predicted_rate());
  if (s.trials_size() > 0 && top > 0) {
    top *= 1.1;
    const double w = 560, h = 200, left = 60, right = 20, pad = 14, bottom = 26;
    const double plot_w = w - left - right, plot_h = h - pad - bottom;
    auto x = [&](int i) { return left + plot_w * (i + 0.5) / s.trials_size(); };
    auto y = [&](double rate) { return pad + plot_h * (1 - rate / top); };
    auto c = [](double v) { return absl::StrFormat("%.1f", v); };
    std::string svg = absl::StrCat("<svg class=\"plot search\" width=\"", c(w), "\" height=\"",
                                   c(h), "\" viewBox=\"0 0 ", c(w), " ", c(h), "\" role=\"img\">");
    absl::StrAppend(&svg, "<line x1=\"", c(left), "\" y1=\"", c(pad + plot_h), "\" x2=\"",
                    c(left + plot_w), "\" y2=\"", c(pad + plot_h), "\" stroke=\"#999\"/>",
                    "<line x1=\"", c(left), "\" y1=\"", c(pad), "\" x2=\"", c(left), "\" y2=\"",
                    c(pad + plot_h), "\" stroke=\"#999\"/>");
    for (double frac : {0.0, 0.5, 1.0}) {
      const double rate = top / 1.1 * frac;
      absl::StrAppend(&svg, "<text x=\"", c(left - 4), "\" y=\"", c(y(rate) + 4),
                      "\" text-anchor=\"end\">", HtmlEscape(FormatNumber(std::round(rate))),
                      "</text>");
    }
    absl::StrAppend(&svg, "<text x=\"", c(left + plot_w / 2), "\" y=\"", c(h - 6),
                    "\" text-anchor=\"middle\">trial (in order); connects/s up</text>");
    auto hline = [&](double rate, const char* color, const char* dash, const std::string& label) {
      absl::StrAppend(&svg, "<line x1=\"", c(left), "\" y1=\"", c(y(rate)), "\" x2=\"",
                      c(left + plot_w), "\" y2=\"", c(y(rate)), "\" stroke=\"", color, "\"", dash,
                      "><title>", HtmlEscape(label), "</title></line>");
    };
    if (s.has_knee_rate()) {
      hline(s.knee_rate(), "#1b5e20", "", absl::StrCat("knee ", FormatNumber(s.knee_rate()), "/s"));
    }
    if (m.has_predicted_rate()) {
      hline(m.predicted_rate(), "#0d47a1", " stroke-dasharray=\"5,4\"",
            absl::StrCat("predicted ", FormatNumber(m.predicted_rate()), "/s"));
    }
    for (int i = 0; i < s.trials_size(); ++i) {
      const rv1::SearchTrial& t = s.trials(i);
      absl::StrAppend(
          &svg, "<circle cx=\"", c(x(i)), "\" cy=\"", c(y(t.rate())), "\" r=\"5\" fill=\"",
          t.passed() ? "#2e7d32" : "#c62828", "\"><title>",
          HtmlEscape(absl::StrCat("trial ", i + 1, " (", t.phase(), "): ", FormatNumber(t.rate()),
                                  "/s ", t.passed() ? "pass" : "FAIL", ": ", t.reason())),
          "</title></circle>");
    }
    absl::StrAppend(&out, svg, "</svg>",
                    "<div class=\"legend\"><span><i style=\"background:#2e7d32\"></i>pass</span>"
                    "<span><i style=\"background:#c62828\"></i>fail</span>"
                    "<span><i style=\"background:#1b5e20\"></i>knee</span>"
                    "<span><i style=\"background:#0d47a1\"></i>prediction (dashed)</span></div>");
  }

  absl::StrAppend(&out,
                  "<table class=\"search\"><tr><th>#</th><th>phase</th><th>rate/s</th>"
                  "<th>result</th><th>tried</th><th>estab</th><th>reset</th><th>refused</th>"
                  "<th>timeout</th><th>errors</th><th>launches dropped</th><th>server drops</th>"
                  "<th>loss %</th><th>ms</th><th>reason</th></tr>");
  for (int i = 0; i < s.trials_size(); ++i) {
    const rv1::SearchTrial& t = s.trials(i);
    auto n = [](double v) { return absl::StrCat("<td class=\"n\">", FormatNumber(v), "</td>"); };
    absl::StrAppend(
        &out, "<tr><td class=\"n\">", i + 1, "</td><td>", HtmlEscape(t.phase()), "</td>",
        n(t.rate()), t.passed() ? "<td class=\"pass\">pass</td>" : "<td class=\"fail\">FAIL</td>",
        n(t.attempted()), n(t.established()), n(t.reset()), n(t.refused()), n(t.timed_out()),
        n(t.errors()), n(t.launches_dropped()),
        t.has_server_drops() ? n(t.server_drops()) : "<td class=\"muted\">not observed</td>",
        n(t.loss_percent()), n(std::round(t.duration_ms())), "<td>", HtmlEscape(t.reason()),
        "</td></tr>");
  }
  absl::StrAppend(&out, "</table>");
  return out;
}

}  // namespace synq::controller::search
