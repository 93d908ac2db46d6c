// Proves that the HTML report escapes every text it takes from the result, references no URL,
// and draws its plots for a real result: the connect-latency histogram on a log axis with the
// SYN-retransmit instants shaded (1 s, 3 s, 7 s), the bars and outcome ticks where the kernel
// put them, accept-queue and counter plots, the sweep overview, and what others fill in
// (expectations, diagnosis, baseline) when present.
//
// tests/data/accept-queue-overflow.result.json is the result.json of a real run of
// `synq run examples/accept-queue-overflow.yaml --out DIR` (as root, real agents and namespaces),
// checked in with only its whitespace removed (python json.dump, compact separators) so that
// this test sees what synq writes.
#include "controller/result/html_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "controller/result/result_json.h"

namespace synq::controller::result {
namespace {

const char kRealResult[] = SYNQ_SOURCE_DIR "/tests/data/accept-queue-overflow.result.json";

v1::Result RealResult() {
  auto r = ReadResultFile(kRealResult);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : v1::Result();
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::vector<std::smatch> All(const std::string& text, const std::regex& re) {
  std::vector<std::smatch> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    out.push_back(*it);
  }
  return out;
}

// The SVG of one flood's histogram in run `run` (runs are rendered in order, floods by name).
std::string HistogramSvg(const std::string& html, int run, const std::string& flood) {
  const size_t section = html.find("<section class=\"run\" id=\"run-" + std::to_string(run) + "\"");
  if (section == std::string::npos) return "";
  const size_t title = html.find("<h4>" + flood + ": connect latency</h4>", section);
  if (title == std::string::npos) return "";
  const size_t start = html.find("<svg", title);
  const size_t end = html.find("</svg>", start);
  return html.substr(start, end - start);
}

double FirstX(const std::string& svg, const std::string& prefix) {
  std::smatch m;
  const std::regex re(prefix + R"re([^>]*? x="([\d.]+)")re");
  if (!std::regex_search(svg, m, re)) return -1;
  return std::stod(m[1]);
}

TEST(HtmlEscape, EscapesTheFiveSpecialCharacters) {
  EXPECT_EQ(HtmlEscape(R"(<a href="x">Tom & 'Jerry'</a>)"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("plain 1.2 ms"), "plain 1.2 ms");
}

TEST(HtmlReport, EscapesEveryTextTakenFromTheResult) {
  v1::Result result = RealResult();
  ASSERT_GT(result.runs_size(), 0);
  const std::string evil = "<script>alert('x')</script>";
  result.set_scenario(evil);
  v1::Run& run = *result.mutable_runs(0);
  run.add_errors(evil);
  (*run.mutable_params())["settings.server.x"].set_string_value(evil);
  auto* e = run.add_expectations();
  e->set_expression(evil);
  auto* f = run.add_diagnosis();
  f->set_text(evil);
  f->set_remedy(evil);
  (*run.mutable_hosts())["server"].set_kernel(evil);
  const std::string html = RenderHtmlReport(result);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("alert('x')"), std::string::npos);
  EXPECT_GE(Count(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), 7u);
}

TEST(HtmlReport, ReferencesNoUrl) {
  const std::string html = RenderHtmlReport(RealResult());
  for (const char* bad : {"http://", "https://", "url(", "@import", "<script", "<link", "<img"}) {
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  }
  // The only references are fragments of the page (the sweep table's links to the runs).
  const auto refs = All(html, std::regex(R"re(\b(src|href)\s*=\s*"([^"]*)")re"));
  EXPECT_FALSE(refs.empty());
  for (const auto& m : refs) {
    EXPECT_EQ(m[2].str().rfind('#', 0), 0u) << m[0].str();
    EXPECT_EQ(m[2].str().find("//"), std::string::npos) << m[0].str();
  }
}

TEST(HtmlReport, LatencyAxisIsLogarithmicWithTheSynRetransmitBands) {
  const v1::Result result = RealResult();
  ASSERT_EQ(result.runs_size(), 4);
  const std::string html = RenderHtmlReport(result);
  for (int run = 0; run < 4; ++run) {
    for (const std::string flood : {"burst", "prefill"}) {
      SCOPED_TRACE("run " + std::to_string(run) + " " + flood);
      const std::string svg = HistogramSvg(html, result.runs(run).index(), flood);
      ASSERT_FALSE(svg.empty());
      // With an initial RTO of 1 s doubling, SYN retransmits leave at 1, 3 and 7 s.
      for (const char* band : {"leaves at 1 s", "leaves at 3 s", "leaves at 7 s"}) {
        EXPECT_NE(svg.find(band), std::string::npos) << band;
      }
      for (const char* label : {">1 ms<", ">10 ms<", ">100 ms<", ">1 s<", ">3 s<", ">7 s<"}) {
        EXPECT_NE(svg.find(label), std::string::npos) << label;
      }
      // A log axis: the decades are evenly spaced (1 ms -> 10 ms -> 100 ms).
      const auto decade = [&](const std::string& label) {
        std::smatch m;
        const std::regex re(R"re(<text x="([\d.]+)"[^>]*>)re" + label + "</text>");
        return std::regex_search(svg, m, re) ? std::stod(m[1]) : -1.0;
      };
      const double x1 = decade("1 ms"), x10 = decade("10 ms"), x100 = decade("100 ms");
      EXPECT_NEAR(x10 - x1, x100 - x10, 0.2);
      // The 3 s instant lies log10(3) of a decade right of 1 s, 7 s log10(7).
      const auto bands = All(svg, std::regex(R"re(<rect class="retransmit-band" x="([\d.]+)")re"));
      ASSERT_GE(bands.size(), 3u);
      const double decade_px = x10 - x1;
      EXPECT_NEAR(std::stod(bands[1][1]) - std::stod(bands[0][1]), std::log10(3.0) * decade_px,
                  0.5);
      EXPECT_NEAR(std::stod(bands[2][1]) - std::stod(bands[0][1]), std::log10(7.0) * decade_px,
                  0.5);
    }
  }
}

TEST(HtmlReport, BarsAndOutcomeTicksLieWhereTheKernelPutThem) {
  const v1::Result result = RealResult();
  const std::string html = RenderHtmlReport(result);
  for (const auto& run : result.runs()) {
    SCOPED_TRACE("run " + std::to_string(run.index()));
    // The prefill connects after one SYN-ACK delayed by 200 ms: its bar lies between the 100 ms
    // gridline and the first retransmit band (1 s).
    const std::string prefill = HistogramSvg(html, run.index(), "prefill");
    std::smatch m;
    ASSERT_TRUE(
        std::regex_search(prefill, m, std::regex(R"re(<text x="([\d.]+)"[^>]*>100 ms<)re")));
    const double x100ms = std::stod(m[1]);
    const double x1s = FirstX(prefill, R"(<rect class="retransmit-band")");
    const auto bars = All(prefill, std::regex(R"re(<rect class="hist-bar" x="([\d.]+)")re"));
    ASSERT_EQ(bars.size(), 1u) << "one connection, one bucket";
    EXPECT_GT(std::stod(bars[0][1]), x100ms);
    EXPECT_LT(std::stod(bars[0][1]), x1s);

    // With syncookies 0, three burst SYNs are dropped (SYN queue full) and the client gives up
    // after syn_retries 2, at 1 + 2 + 4 = 7 s: three timed-out ticks right of the 7 s band.
    const std::string burst = HistogramSvg(html, run.index(), "burst");
    const auto timeouts = All(
        burst, std::regex(R"re(<rect class="outcome-tick" x="([\d.]+)"[^>]*><title>timed out)re"));
    const bool cookies =
        run.params().at("settings.server.net.ipv4.tcp_syncookies").number_value() == 1;
    if (cookies) {
      EXPECT_TRUE(timeouts.empty());
    } else {
      const auto bands =
          All(burst, std::regex(R"re(<rect class="retransmit-band" x="([\d.]+)")re"));
      ASSERT_GE(bands.size(), 3u);
      ASSERT_EQ(timeouts.size(), 3u);
      for (const auto& t : timeouts) EXPECT_GT(std::stod(t[1]), std::stod(bands[2][1]) - 2);
    }
  }
}

TEST(HtmlReport, DrawsQueueAndCounterPlotsAndTheSweepOverview) {
  const v1::Result result = RealResult();
  const std::string html = RenderHtmlReport(result);
  // One accept-queue plot per run (listener l1), each with three drawn lines.
  EXPECT_EQ(Count(html, "<svg class=\"plot queue-plot\""), 4u);
  EXPECT_EQ(All(html, std::regex(R"re(<path class="accept-queue" d="M[\d.]+ [\d.]+ H)re")).size(),
            4u);
  EXPECT_EQ(All(html, std::regex(R"re(<path class="syn-recv" d="M[\d.]+ [\d.]+ H)re")).size(), 4u);
  EXPECT_EQ(All(html, std::regex(R"re(<path class="queue-max" d="M[\d.]+ [\d.]+ H)re")).size(), 4u);
  // The burst overflows the accept queue of backlog 1 in every run: the server's
  // ListenOverflows counter moved and is plotted.
  EXPECT_GE(Count(html, ">TcpExtListenOverflows</text>"), 4u);
  // A sweep of 2 x 2: the overview has one row per run.
  EXPECT_EQ(Count(html, "<svg class=\"plot sweep-outcomes\""), 1u);
  EXPECT_EQ(All(html, std::regex(R"re(<a href="#run-\d+">)re")).size(), 4u);
  EXPECT_NE(html.find("tcp_abort_on_overflow=1, tcp_syncookies=1"), std::string::npos);
  // Settings and shaping in force: the swept setting and the 200 ms delay.
  EXPECT_GE(Count(html, "<td>net.ipv4.tcp_abort_on_overflow"), 4u);
  EXPECT_GE(Count(html, "<td class=\"n\">200</td>"), 4u) << "200 ms delay";
}

TEST(HtmlReport, ShowsExpectationsDiagnosisBaselineAndWhatWasNotObserved) {
  v1::Result result = RealResult();
  v1::Run& run = *result.mutable_runs(0);
  run.clear_start_skew_ms();
  auto* e = run.add_expectations();
  e->set_expression("floods.burst.established == 99");
  e->set_passed(false);
  auto* c = e->add_comparisons();
  c->set_left("floods.burst.established");
  c->set_op("==");
  c->set_right("99");
  c->set_left_value(4);
  c->set_right_value(99);
  auto* f = run.add_diagnosis();
  f->set_rule("accept_queue_overflow");
  f->set_text("1 final ACK found the accept queue full");
  f->set_remedy("raise the listen backlog");
  auto* b = run.mutable_baseline();
  b->set_file("old.json");
  auto* check = b->add_checks();
  check->set_field("floods.burst.established");
  check->set_baseline(4);
  check->set_current(2);
  check->set_tolerance_percent(10);
  const std::string html = RenderHtmlReport(result);
  EXPECT_NE(html.find("<code>floods.burst.established == 99</code></td><td class=\"fail\">FAIL"),
            std::string::npos);
  EXPECT_NE(html.find("floods.burst.established = 4 == 99 = 99"), std::string::npos);
  EXPECT_NE(html.find("1 final ACK found the accept queue full"), std::string::npos);
  EXPECT_NE(html.find("What would change it: raise the listen backlog"), std::string::npos);
  EXPECT_NE(html.find("old.json"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"n\">10%</td><td class=\"fail\">"), std::string::npos);
  EXPECT_NE(html.find("<tr><th>start skew</th><td><span class=\"muted\">not observed"),
            std::string::npos);
  EXPECT_NE(html.find("0 of 1 passed"), std::string::npos);
}

TEST(HtmlReport, LongSeriesAreDownsampled) {
  v1::Result result = RealResult();
  result.mutable_runs()->DeleteSubrange(1, result.runs_size() - 1);
  v1::Run& run = *result.mutable_runs(0);
  ASSERT_GT(run.samples_size(), 0);
  // 40 000 samples (a 400 s run sampled every 10 ms) of a queue that never holds still (0..6),
  // one with a spike of 50.
  v1::Sample proto;
  for (const auto& s : run.samples()) {
    if (s.host() == "server") proto = s;  // the last server sample, with listener l1
  }
  ASSERT_EQ(proto.listeners().count("l1"), 1u);
  run.clear_samples();
  for (int i = 0; i < 40000; ++i) {
    v1::Sample* s = run.add_samples();
    *s = proto;
    s->set_t_ms(i * 10.0);
    (*s->mutable_listeners())["l1"].set_accept_queue(i == 12345 ? 50 : i % 7);
  }
  const std::string html = RenderHtmlReport(result);
  EXPECT_LT(html.size(), 300u * 1024u);
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(html, m, std::regex(R"re(<path class="accept-queue" d="([^"]*)")re")));
  EXPECT_LE(Count(m[1].str(), "H"), 400u);
  // The spike survives: the y axis is scaled to it (50 * 1.15, rounded up).
  EXPECT_NE(html.find(">58</text>"), std::string::npos);
}

TEST(HtmlReport, ARunWhoseAgentFailedShowsItsErrorAndNoPlots) {
  // What a run looks like when the server's agent failed before anything was measured.
  v1::Result result;
  result.set_scenario("failed");
  v1::Run* run = result.add_runs();
  run->add_errors("server: agent unreachable");
  run->add_not_observed("start_skew_ms: no flood started");
  const std::string html = RenderHtmlReport(result);
  EXPECT_NE(html.find("<li>server: agent unreachable</li>"), std::string::npos);
  EXPECT_NE(html.find("start_skew_ms: no flood started"), std::string::npos);
  EXPECT_NE(html.find("no samples"), std::string::npos);
  EXPECT_EQ(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("sweep-outcomes"), std::string::npos) << "one run is not a sweep";
}

}  // namespace
}  // namespace synq::controller::result

namespace synq::controller::result {
namespace {

TEST(SynRetransmitSeconds, FollowTheKernelsLinearThenDoublingBackoff) {
  // Measured on Linux 6.18 (tcp_syn_linear_timeouts 4, syn_retries 7, SYNs dropped by a
  // firewall rule): retransmits at 1.04, 2.06, 3.08, 4.10, 5.14, 7.13, 11.29, 19.5 s.
  EXPECT_EQ(SynRetransmitSeconds(4, 8), (std::vector<double>{1, 2, 3, 4, 5, 7, 11, 19}));
  // Kernels before 6.5 (no such setting): the classic doubling from the initial 1 s RTO.
  EXPECT_EQ(SynRetransmitSeconds(0, 5), (std::vector<double>{1, 3, 7, 15, 31}));
}

}  // namespace
}  // namespace synq::controller::result
