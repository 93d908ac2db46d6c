// Proves that the HTML report of a real run of examples/accept-queue-overflow.yaml (4 runs:
// abort_on_overflow x syncookies) renders its plots in a real browser, headless Chromium:
// the DOM chromium built holds the SVG plots with non-empty marks, the screenshot has the plot
// colours in quantity, and chromium made no network request for the page (its net log has no
// request initiated by the page; a control page with one external image shows the check works).
#include "controller/result/html_report.h"

#include <gtest/gtest.h>
#include <png.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "controller/result/result_json.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

namespace fs = std::filesystem;
constexpr char kChromium[] = "/usr/bin/chromium";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs chromium headless on `url` with `extra` flags, stdout to `stdout_file`. Chromium forks
// helpers into its process group; the whole group is killed when the run ends or times out.
int RunChromium(const std::string& url, const std::vector<std::string>& extra,
                const std::string& stdout_file, const std::string& stderr_file) {
  TempDir profile;
  std::vector<std::string> argv = {kChromium,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-quic",
                                   "--no-first-run",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--host-resolver-rules=MAP * ~NOTFOUND",
                                   "--user-data-dir=" + profile.path()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    FILE* out = std::fopen(stdout_file.c_str(), "w");
    FILE* err = std::fopen(stderr_file.c_str(), "w");
    if (out == nullptr || err == nullptr) _exit(126);
    dup2(fileno(out), STDOUT_FILENO);
    dup2(fileno(err), STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before we may kill it
  const int rc = WaitFor(pid, std::chrono::seconds(120));
  kill(-pid, SIGKILL);  // helpers that outlived the browser, or the browser itself on timeout
  if (rc == -1) WaitFor(pid, std::chrono::seconds(10));
  return rc;
}

struct Rgb {
  int r, g, b;
};
Rgb Hex(const std::string& s) {
  const unsigned long v = std::strtoul(s.c_str() + 1, nullptr, 16);
  return {static_cast<int>((v >> 16) & 0xff), static_cast<int>((v >> 8) & 0xff),
          static_cast<int>(v & 0xff)};
}

struct Image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
  // Pixels within 3 of `c` per channel (flat SVG fills are drawn exactly; 3 absorbs rounding).
  size_t Count(Rgb c) const {
    size_t n = 0;
    for (size_t i = 0; i + 2 < rgb.size(); i += 3) {
      if (std::abs(rgb[i] - c.r) <= 3 && std::abs(rgb[i + 1] - c.g) <= 3 &&
          std::abs(rgb[i + 2] - c.b) <= 3) {
        ++n;
      }
    }
    return n;
  }
};

bool DecodePng(const std::string& path, Image* out) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_file(&image, path.c_str()) == 0) return false;
  image.format = PNG_FORMAT_RGB;
  out->rgb.resize(PNG_IMAGE_SIZE(image));
  if (png_image_finish_read(&image, nullptr, out->rgb.data(), 0, nullptr) == 0) return false;
  out->width = image.width;
  out->height = image.height;
  return true;
}

// The URLs of requests the page made (the browser's own background requests carry the
// initiator "not an origin"; a file:// page's requests carry its opaque origin "null").
std::vector<std::string> PageRequests(const std::string& netlog_file) {
  const nlohmann::json log = nlohmann::json::parse(ReadText(netlog_file), nullptr, false);
  std::vector<std::string> urls;
  if (log.is_discarded()) return {"<net log unreadable>"};
  const int start_job = log["constants"]["logEventTypes"].value("URL_REQUEST_START_JOB", -1);
  for (const auto& e : log["events"]) {
    // The job's end event carries only its net_error; its start carries the url.
    if (e.value("type", -2) != start_job || !e.contains("params") || !e["params"].contains("url")) {
      continue;
    }
    const auto& p = e["params"];
    if (p.value("initiator", "") != "not an origin") urls.push_back(p.value("url", "?"));
  }
  return urls;
}

std::vector<std::smatch> All(const std::string& text, const std::regex& re) {
  std::vector<std::smatch> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    out.push_back(*it);
  }
  return out;
}

class HtmlReport : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: hosts are network namespaces";
    if (!fs::exists(kChromium)) GTEST_SKIP() << "needs Debian's chromium at " << kChromium;
  }
  TempDir out_;
  TempDir work_;
};

TEST_F(HtmlReport, NetLogCatchesARequestFromThePage) {
  // The control for the no-network check below: a page that loads one external image.
  const std::string page =
      work_.Write("control.html",
                  "<!DOCTYPE html><html><body><img src=\"http://synq-probe.invalid/x.png\">"
                  "</body></html>");
  const std::string netlog = work_.path() + "/control-net.json";
  RunChromium("file://" + page, {"--log-net-log=" + netlog, "--dump-dom"},
              work_.path() + "/control.out", work_.path() + "/control.err");
  const std::vector<std::string> urls = PageRequests(netlog);
  EXPECT_NE(std::find(urls.begin(), urls.end(), "http://synq-probe.invalid/x.png"), urls.end())
      << "the net log did not show the page's request; the check below could not fail";
}

TEST_F(HtmlReport, AcceptQueueOverflowReportRendersItsPlotsOfflineInChromium) {
  SynqRun r = RunSynq(Source("examples/accept-queue-overflow.yaml"), out_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The file `synq run` wrote is the one checked, as a user would open it.
  const std::string report = out_.path() + "/report.html";
  ASSERT_TRUE(fs::exists(report)) << "synq run did not write " << report;
  const std::string html = ReadText(report);
  ASSERT_FALSE(html.empty());

  // Nothing in the file can reach out: no URL scheme, no protocol-relative reference, no CSS
  // import or url(); every src/href is a fragment of the page itself.
  for (const char* bad : {"http:", "https:", "url(", "@import", "<script src", "<link"}) {
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  }
  for (const auto& m : All(html, std::regex(R"re(\b(src|href)\s*=\s*"([^"]*)")re"))) {
    EXPECT_EQ(m[2].str().rfind('#', 0), 0u) << m[0].str();
  }

  const std::string dom_file = work_.path() + "/dom.html";
  const std::string netlog = work_.path() + "/net.json";
  const std::string url = "file://" + report;
  ASSERT_EQ(RunChromium(url, {"--dump-dom", "--log-net-log=" + netlog}, dom_file,
                        work_.path() + "/dom.err"),
            0)
      << ReadText(work_.path() + "/dom.err");
  const std::string dom = ReadText(dom_file);
  EXPECT_TRUE(PageRequests(netlog).empty())
      << "the report made a request: " << PageRequests(netlog).front();

  // The scenario sweeps 2 x 2 settings and has 2 floods: 4 runs, 8 connect-latency histograms.
  EXPECT_EQ(All(dom, std::regex(R"(<svg class="plot latency-histogram")")).size(), 8u);
  EXPECT_EQ(All(dom, std::regex(R"(<a href="#run-\d+")")).size(), 4u) << "sweep overview rows";
  // Each histogram's time axis reaches the 10 s connect timeout, so each shows at least three
  // SYN retransmit instants below it (1, 3, 7 s on older kernels; 1, 2, 3, 4, 5, 7 s with the
  // default net.ipv4.tcp_syn_linear_timeouts 4 of kernels since 6.5).
  EXPECT_GE(All(dom, std::regex(R"(<rect class="retransmit-band")")).size(), 3u * 8u);
  // Every run establishes the prefill and at least one burst connection: each histogram has a
  // bar, drawn with a positive size.
  const auto bars =
      All(dom, std::regex(R"re(<rect class="hist-bar" x="[\d.]+" y="[\d.]+" )re"
                          R"re(width="([\d.]+)" height="([\d.]+)" fill="(#[0-9a-f]{6})")re"));
  ASSERT_GE(bars.size(), 8u);
  for (const auto& b : bars) {
    EXPECT_GT(std::stod(b[1]), 0);
    EXPECT_GT(std::stod(b[2]), 0);
  }
  // One accept-queue plot per run for listener l1, with a drawn line.
  const auto queue_paths =
      All(dom, std::regex(R"re(<path class="accept-queue" d="(M[^"]+ H[^"]+)" fill="none" )re"
                          R"re(stroke="(#[0-9a-f]{6})")re"));
  EXPECT_EQ(queue_paths.size(), 4u);
  // Sweep bars: the established segment of each run.
  const auto established =
      All(dom, std::regex(R"re(<rect class="bar" [^>]*fill="(#[0-9a-f]{6})"><title>run \d+ )re"
                          R"re(\([^<]*\): established)re"));
  EXPECT_EQ(established.size(), 4u);

  // The screenshot: the plots are drawn, in their colours.
  const std::string shot = work_.path() + "/report.png";
  ASSERT_EQ(
      RunChromium(url, {"--screenshot=" + shot, "--window-size=1280,8000", "--hide-scrollbars"},
                  work_.path() + "/shot.out", work_.path() + "/shot.err"),
      0)
      << ReadText(work_.path() + "/shot.err");
  Image image;
  ASSERT_TRUE(DecodePng(shot, &image)) << shot;
  EXPECT_EQ(image.width, 1280u);
  ASSERT_FALSE(bars.empty());
  ASSERT_FALSE(queue_paths.empty());
  ASSERT_FALSE(established.empty());
  // Histogram bars have a colour used by nothing else. Each histogram's fullest bucket is drawn
  // at the full plot height (180 px) and at least 4 px wide (3 px without the antialiased edge);
  // run 1's 2 histograms and its plots lie within the first 8000 px.
  EXPECT_GE(image.Count(Hex(bars[0][3])), 2u * 3u * 180u) << "histogram bars " << bars[0][3];
  // The established share of 4 sweep bars, 640 px at full scale and 20 px tall, at least 1/6
  // of each (the prefill of 6 attempts always connects), beyond the 12x12 legend squares.
  EXPECT_GE(image.Count(Hex(established[0][1])), 4u * 640u / 6u * 20u)
      << "established " << established[0][1];
  // The accept-queue line of run 1: a 2 px line across the 1000 px plot, beyond its legend.
  EXPECT_GE(image.Count(Hex(queue_paths[0][2])), 2u * 1000u / 2u)
      << "accept queue " << queue_paths[0][2];

  // SYNQ_REPORT_SCREENSHOT=path keeps the screenshot (docs/report.png is made this way).
  if (const char* keep = std::getenv("SYNQ_REPORT_SCREENSHOT")) {
    fs::copy_file(shot, keep, fs::copy_options::overwrite_existing);
  }
}

}  // namespace
}  // namespace synq::testing
