#include "controller/result/flood_series_chart.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controller/result/escape.h"

namespace synq::controller::result {
namespace {

namespace rv1 = ::synq::result::v1;

constexpr double kLeft = 64, kWidth = 760, kTop = 24, kCountH = 180, kGap = 36, kLatH = 90;
constexpr char kRateColor[] = "#9e9e9e";
constexpr char kLaunchedColor[] = "#1565c0";
constexpr char kEstablishedColor[] = "#2e7d32";
constexpr char kFailedColor[] = "#c62828";
constexpr char kDroppedColor[] = "#ef6c00";
constexpr char kLatencyColor[] = "#6a1b9a";

std::string F(double v) { return absl::StrFormat("%.1f", v); }

std::string Short(double v) {
  if (v >= 1e6) return absl::StrFormat("%.3gM", v / 1e6);
  if (v >= 1e4) return absl::StrFormat("%.3gk", v / 1e3);
  return absl::StrFormat("%.4g", v);
}

// A polyline through (second + 0.5, value) of every second that has a value.
std::string Polyline(const std::vector<double>& values, const std::vector<bool>& present,
                     double seconds, double bottom, double height, double vmax, const char* color,
                     const std::string& name, const char* dash = "") {
  std::string points;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!present[i]) continue;
    const double x = kLeft + (static_cast<double>(i) + 0.5) / seconds * kWidth;
    const double y = bottom - values[i] / vmax * height;
    absl::StrAppend(&points, F(x), ",", F(y), " ");
  }
  std::string cls = name;  // "timed_out+reset+..." -> "timed_out-reset-...": one class
  for (char& c : cls) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '-';
  }
  return absl::StrCat("<polyline class=\"series ", cls, "\" fill=\"none\" stroke=\"", color,
                      "\" stroke-width=\"2\"", dash, " points=\"", points, "\"><title>",
                      HtmlEscape(name), "</title></polyline>");
}

std::string Axis(double top, double bottom, double seconds, double vmax, const char* unit) {
  std::string out =
      absl::StrCat("<line x1=\"", F(kLeft), "\" y1=\"", F(top), "\" x2=\"", F(kLeft), "\" y2=\"",
                   F(bottom), "\" stroke=\"#333\"/><line x1=\"", F(kLeft), "\" y1=\"", F(bottom),
                   "\" x2=\"", F(kLeft + kWidth), "\" y2=\"", F(bottom), "\" stroke=\"#333\"/>");
  absl::StrAppend(&out, "<text x=\"", F(kLeft - 6), "\" y=\"", F(top + 10),
                  "\" text-anchor=\"end\" class=\"axis-label\">", Short(vmax), unit,
                  "</text><text x=\"", F(kLeft - 6), "\" y=\"", F(bottom),
                  "\" text-anchor=\"end\" class=\"axis-label\">0</text>");
  const int step = std::max(1, static_cast<int>(std::ceil(seconds / 10)));
  for (int s = 0; s <= static_cast<int>(seconds); s += step) {
    const double x = kLeft + s / seconds * kWidth;
    absl::StrAppend(&out, "<line x1=\"", F(x), "\" y1=\"", F(top), "\" x2=\"", F(x), "\" y2=\"",
                    F(bottom), "\" stroke=\"#e0e0e0\" class=\"grid\"/><text x=\"", F(x), "\" y=\"",
                    F(bottom + 13), "\" text-anchor=\"middle\" class=\"axis-label\">", s,
                    " s</text>");
  }
  return out;
}

}  // namespace

std::string FloodSeriesChart(const std::string& name, const rv1::Flood& f) {
  const int n = f.series_size();
  if (n == 0) return "";
  const double seconds = std::max<double>(1, f.series(n - 1).second() + 1);
  std::vector<double> rate(seconds), launched(seconds), established(seconds), failed(seconds),
      dropped(seconds), p99(seconds);
  std::vector<bool> has(seconds, false), has_rate(seconds, false), has_p99(seconds, false);
  int first_failure = -1;
  double vmax = 1, lmax = 0;
  for (const rv1::FloodSecond& s : f.series()) {
    const size_t i = s.second();
    if (i >= rate.size()) continue;
    has[i] = true;
    rate[i] = s.rate();
    has_rate[i] = s.rate() > 0;
    launched[i] = s.launched();
    established[i] = s.established();
    failed[i] = static_cast<double>(uint64_t{s.timed_out()} + s.reset() + s.refused() + s.errors());
    dropped[i] = s.dropped();
    if (failed[i] > 0 && (first_failure < 0 || static_cast<int>(i) < first_failure)) {
      first_failure = static_cast<int>(i);
    }
    vmax = std::max({vmax, rate[i], launched[i], established[i], failed[i], dropped[i]});
    if (s.has_connect_latency_ms()) {
      has_p99[i] = true;
      p99[i] = s.connect_latency_ms().p99();
      lmax = std::max(lmax, p99[i]);
    }
  }
  vmax *= 1.05;
  lmax = lmax > 0 ? lmax * 1.1 : 1;
  const double count_bottom = kTop + kCountH;
  const double lat_top = count_bottom + kGap;
  const double lat_bottom = lat_top + kLatH;
  const double height = lat_bottom + 24;
  std::string svg = absl::StrCat(
      "<svg class=\"plot flood-series\" width=\"", F(kLeft + kWidth + 20), "\" height=\"",
      F(height), "\" viewBox=\"0 0 ", F(kLeft + kWidth + 20), " ", F(height), "\" role=\"img\">");
  absl::StrAppend(&svg, "<text x=\"", F(kLeft), "\" y=\"14\" class=\"plot-title\">",
                  HtmlEscape(name), ": attempts per second (by scheduled second)</text>");
  absl::StrAppend(&svg, Axis(kTop, count_bottom, seconds, vmax, "/s"));
  absl::StrAppend(&svg, Polyline(rate, has_rate, seconds, count_bottom, kCountH, vmax, kRateColor,
                                 "scheduled rate", " stroke-dasharray=\"6 4\""));
  absl::StrAppend(&svg, Polyline(launched, has, seconds, count_bottom, kCountH, vmax,
                                 kLaunchedColor, "launched"));
  absl::StrAppend(&svg, Polyline(established, has, seconds, count_bottom, kCountH, vmax,
                                 kEstablishedColor, "established"));
  absl::StrAppend(&svg, Polyline(failed, has, seconds, count_bottom, kCountH, vmax, kFailedColor,
                                 "timed_out+reset+refused+errors"));
  if (std::any_of(dropped.begin(), dropped.end(), [](double d) { return d > 0; })) {
    absl::StrAppend(&svg, Polyline(dropped, has, seconds, count_bottom, kCountH, vmax,
                                   kDroppedColor, "dropped launches", " stroke-dasharray=\"2 3\""));
  }
  if (first_failure >= 0) {
    const double x = kLeft + first_failure / seconds * kWidth;
    absl::StrAppend(&svg, "<line class=\"first-failure\" x1=\"", F(x), "\" y1=\"", F(kTop),
                    "\" x2=\"", F(x), "\" y2=\"", F(lat_bottom), "\" stroke=\"", kFailedColor,
                    "\" stroke-dasharray=\"3 3\"/><text x=\"", F(x + 4), "\" y=\"", F(kTop + 10),
                    "\" class=\"band-label\">first failures: second ", first_failure,
                    has_rate[first_failure]
                        ? absl::StrCat(" (scheduled ", Short(rate[first_failure]), "/s)")
                        : std::string(),
                    "</text>");
  }
  absl::StrAppend(&svg, "<text x=\"", F(kLeft), "\" y=\"", F(lat_top - 6),
                  "\" class=\"plot-title\">p99 connect latency (ms)</text>");
  absl::StrAppend(&svg, Axis(lat_top, lat_bottom, seconds, lmax, " ms"));
  absl::StrAppend(&svg, Polyline(p99, has_p99, seconds, lat_bottom, kLatH, lmax, kLatencyColor,
                                 "p99 connect ms"));
  absl::StrAppend(&svg, "</svg>");
  std::string legend = "<div class=\"legend\">";
  for (const auto& [label, color] : std::vector<std::pair<const char*, const char*>>{
           {"scheduled rate", kRateColor},
           {"launched", kLaunchedColor},
           {"established", kEstablishedColor},
           {"timed out + reset + refused + errors", kFailedColor},
           {"dropped launches", kDroppedColor},
           {"p99 connect", kLatencyColor}}) {
    absl::StrAppend(&legend, "<span><i style=\"background:", color, "\"></i>", label, "</span>");
  }
  absl::StrAppend(&legend, "</div>");
  return absl::StrCat("<h4>", HtmlEscape(name), " per second</h4>", legend, svg,
                      "<p class=\"caption\">Each attempt counts in the second it was scheduled "
                      "in; latency is measured from the scheduled launch (no coordinated "
                      "omission). ",
                      f.launches_dropped() > 0
                          ? absl::StrCat("The generator dropped ", f.launches_dropped(),
                                         " launches: the offered load was below the schedule.")
                          : std::string(),
                      "</p>");
}

}  // namespace synq::controller::result
