// Benchmark (issue 9 item 2): what fanning out to many agents costs the controller, measured as a
// user would: N real synq-agent processes on unix sockets (no settings, so no root is needed),
// and the real `synq` binary running one scenario against all of them. It is a benchmark, not a
// timed test: the only assertions are that the run succeeded and every flood made its
// connections (figures from a half-failed run would mean nothing).
//
// Setup
// - N agents `synq-agent --listen unix:DIR/aK.sock`, each with its own state dir, started at once;
//   the benchmark waits for every --port-file.
// - The scenario has N hosts h1..hN; h1 runs one listener on 127.0.0.1 (backlog 4096, accept:
// immediate),
//   and every host runs one tiny flood to it (2 connections, concurrency 2, no hold): the work
//   per agent is negligible, so what is measured is the fan-out. Each flood has its own source
//   address (127.1.X.Y): agents pick source ports themselves from ip_local_port_range, and
//   agents sharing one address would pick the same 4-tuples (EADDRNOTAVAIL).
// - `synq run` is forked here and waited for with wait4(), which gives its CPU time (user +
//   system) and peak RSS; its thread count is read from /proc/PID/status every 10 ms while it
//   runs (the peak is reported).
//
// Reported per size: the controller's phase times from result.json's Run.phase_ms (connect,
// prepare, start, collect, end), its CPU per phase (Run.phase_cpu_ms) and its wall and CPU time;
// start skew as the run reports it (start_skew_ms) and the p50/p99 of the floods' start lateness
// across agents (from each flood's measured start, corrected by the host's clock offset); the
// controller's peak RSS and threads. With two sizes or more, each phase is fitted with a line
// (least squares, time = a + b * N) and projected to 1,000 agents; the model assumes the cost per
// agent stays constant, which is what a fan-out without a thread per agent should give (a model
// that fits badly shows up as a projection far from the measured ratio of the two sizes).
//
// Smoke (CTest, label bench): 20 agents. Full (figures in docs/performance.md):
//   build/tests/bench/bench_fleet --sizes 100,200
//   build/tests/bench/bench_fleet --agents 200
//   build/tests/bench/bench_fleet --sizes 200,1000 --sample-interval 1s  (1,000 real agents:
//   ~3 min, ~4 GiB of memory at the peak)
// `--sample-interval 1s` samples less often on every agent: on one 2-core machine, 200 agents
// sampling every 100 ms take most of the CPU themselves, which slows every phase they answer.
// `--synq PATH` drives the agents with another controller binary (the same agents), for an A/B
// of two controller builds in one script.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<int> g_sizes = {20};
std::string g_sample_interval;  // --sample-interval: the scenario's sample_interval, "" = default
std::string g_synq;             // --synq: another controller binary (an A/B against another build)
constexpr int kConnectionsPerFlood = 2;

struct Figures {
  int agents = 0;
  int exit_code = -1;
  double wall_ms = 0;
  double cpu_ms = 0;         // user + system of the synq process
  double agents_cpu_ms = 0;  // user + system of all agents while synq ran
  int late_acks = 0;         // agents that acknowledged StartFloods after the start instant
  long peak_rss_kb = 0;
  long peak_threads = 0;
  std::map<std::string, double> phase_ms;
  std::map<std::string, double> phase_cpu_ms;  // the controller's own CPU per phase
  bool skew_reported = false;
  double skew_ms = 0;
  double lateness_p50 = 0;
  double lateness_p99 = 0;
  double lateness_spread_p99 = 0;  // p99 - min of the lateness: start skew at the 99th percentile
  std::vector<double> lateness;    // every flood's start_lateness_ms, sorted
  // The same starts on the machine's one clock: every agent here shares the controller's clock,
  // so the true offset is 0 and an agent that waited for start_at + its estimated offset started
  // at lateness + offset after the instant. Its spread is the skew a packet capture would see.
  std::vector<double> one_clock;
  int starts_measured = 0;
  int floods_complete = 0;
  std::string output;
};

long StatusField(pid_t pid, const char* field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  const std::string prefix = absl::StrCat(field, ":");
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::strtol(line.c_str() + prefix.size(), nullptr, 10);
  }
  return -1;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// Agents on unix sockets, SIGTERMed and reaped by the destructor.
class Fleet {
 public:
  Fleet(const TempDir& dir, int n) {
    for (int k = 1; k <= n; ++k) {
      const std::string base = absl::StrCat(dir.path(), "/a", k);
      sockets_.push_back(base + ".sock");
      port_files_.push_back(base + ".addr");
      pids_.push_back(Spawn({Binary("agent/synq-agent"), "--listen", "unix:" + sockets_.back(),
                             "--state-dir", base + ".state", "--port-file", port_files_.back()},
                            base + ".log"));
    }
  }
  ~Fleet() {
    for (pid_t pid : pids_) kill(pid, SIGTERM);
    for (pid_t pid : pids_) {
      if (WaitFor(pid, seconds(20)) == -1) {
        kill(pid, SIGKILL);
        WaitFor(pid, seconds(5));
      }
    }
  }
  // True once every agent wrote its port file (it serves).
  bool WaitReady(std::chrono::milliseconds limit) const {
    return PollUntil(
        [&] {
          return std::all_of(port_files_.begin(), port_files_.end(),
                             [](const std::string& f) { return fs::exists(f); });
        },
        limit);
  }
  const std::vector<std::string>& sockets() const { return sockets_; }
  // CPU time (user + system) the agents used so far, from /proc/PID/stat.
  double CpuMs() const {
    const double tick_ms = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
    double total = 0;
    for (pid_t pid : pids_) {
      std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
      std::string stat((std::istreambuf_iterator<char>(in)), {});
      const size_t close = stat.rfind(')');
      if (close == std::string::npos) continue;
      std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
      // Fields after the command: state is 3rd overall, utime 14th and stime 15th.
      if (fields.size() < 13) continue;
      total +=
          (std::strtod(fields[11].c_str(), nullptr) + std::strtod(fields[12].c_str(), nullptr)) *
          tick_ms;
    }
    return total;
  }

 private:
  std::vector<std::string> sockets_;
  std::vector<std::string> port_files_;
  std::vector<pid_t> pids_;
};

std::string Scenario(const Fleet& fleet) {
  std::string s = "name: fleet\n";
  if (!g_sample_interval.empty()) absl::StrAppend(&s, "sample_interval: ", g_sample_interval, "\n");
  absl::StrAppend(&s, "hosts:\n");
  for (size_t k = 0; k < fleet.sockets().size(); ++k) {
    absl::StrAppend(&s, "  h", k + 1, ": { agent: \"unix:", fleet.sockets()[k], "\" }\n");
  }
  // Accepting, with a backlog far above what N x 2 connections can queue.
  absl::StrAppend(&s,
                  "listeners:\n  - { name: l1, host: h1, address: 127.0.0.1, backlog: 4096, "
                  "accept: immediate }\nfloods:\n");
  for (size_t k = 0; k < fleet.sockets().size(); ++k) {
    absl::StrAppend(&s, "  - { name: f", k + 1, ", host: h", k + 1,
                    ", target: l1, connections: ", kConnectionsPerFlood,
                    ", concurrency: 2, connect_timeout: 2s, hold: 0s, sources: [127.1.",
                    (k + 1) / 250, ".", (k + 1) % 250 + 1, "] }\n");
  }
  return s;
}

Figures Measure(int n) {
  Figures fig;
  fig.agents = n;
  TempDir dir;
  Fleet fleet(dir, n);
  if (!fleet.WaitReady(seconds(30 + n / 5))) {
    fig.output = "agents did not all start";
    return fig;
  }
  const std::string scenario = dir.Write("fleet.yaml", Scenario(fleet));
  const std::string out = dir.path() + "/out";
  const double agents_cpu_before = fleet.CpuMs();
  const auto began = std::chrono::steady_clock::now();
  const pid_t pid =
      Spawn({g_synq.empty() ? Binary("controller/synq") : g_synq, "run", scenario, "--out", out},
            dir.path() + "/synq.log");
  rusage usage{};
  int status = 0;
  const auto deadline = began + seconds(300);
  for (;;) {
    fig.peak_threads = std::max(fig.peak_threads, StatusField(pid, "Threads"));
    if (wait4(pid, &status, WNOHANG, &usage) == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &usage);
      break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  fig.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count();
  fig.agents_cpu_ms = fleet.CpuMs() - agents_cpu_before;
  fig.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  fig.cpu_ms = ms(usage.ru_utime) + ms(usage.ru_stime);
  fig.peak_rss_kb = usage.ru_maxrss;
  {
    std::ifstream log(dir.path() + "/synq.log");
    std::stringstream ss;
    ss << log.rdbuf();
    fig.output = ss.str();
  }
  std::ifstream in(out + "/result.json");
  if (!in) return fig;
  const json result = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (result.is_discarded() || !result.contains("runs") || result["runs"].empty()) return fig;
  const json& run = result["runs"][0];
  if (run.contains("phase_ms")) {
    for (const auto& [k, v] : run["phase_ms"].items()) fig.phase_ms[k] = v.get<double>();
  }
  if (run.contains("phase_cpu_ms")) {
    for (const auto& [k, v] : run["phase_cpu_ms"].items()) fig.phase_cpu_ms[k] = v.get<double>();
  }
  if (run.contains("start_skew_ms")) {
    fig.skew_reported = true;
    fig.skew_ms = run["start_skew_ms"].get<double>();
  }
  if (run.contains("not_observed")) {
    for (const auto& note : run["not_observed"]) {
      const std::string text = note.get<std::string>();
      if (text.rfind("start synchronization:", 0) == 0) {
        // One "NAME (X ms after)" per late agent.
        for (size_t at = text.find("ms after)"); at != std::string::npos;
             at = text.find("ms after)", at + 1)) {
          ++fig.late_acks;
        }
      }
    }
  }
  std::vector<double> lateness;
  if (run.contains("floods")) {
    for (const auto& [name, f] : run["floods"].items()) {
      if (f.contains("start_lateness_ms")) {
        lateness.push_back(f["start_lateness_ms"].get<double>());
        const std::string host = f.value("host", "");
        if (run.contains("hosts") && run["hosts"].contains(host) &&
            run["hosts"][host].contains("clock_offset_ms")) {
          fig.one_clock.push_back(lateness.back() +
                                  run["hosts"][host]["clock_offset_ms"].get<double>());
        }
      }
      if (f.value("established", 0) == kConnectionsPerFlood) ++fig.floods_complete;
    }
  }
  fig.starts_measured = static_cast<int>(lateness.size());
  if (!lateness.empty()) {
    fig.lateness_p50 = Percentile(lateness, 0.50);
    fig.lateness_p99 = Percentile(lateness, 0.99);
    fig.lateness_spread_p99 =
        fig.lateness_p99 - *std::min_element(lateness.begin(), lateness.end());
  }
  std::sort(lateness.begin(), lateness.end());
  std::sort(fig.one_clock.begin(), fig.one_clock.end());
  fig.lateness = std::move(lateness);
  return fig;
}

// The three phases the 1,000-agent target is about, summed; nullopt unless all three are there.
std::optional<double> PrepareStartCollect(const std::map<std::string, double>& phases) {
  double sum = 0;
  for (const char* key : {"prepare", "start", "collect"}) {
    auto it = phases.find(key);
    if (it == phases.end()) return std::nullopt;
    sum += it->second;
  }
  return sum;
}

void Print(const Figures& f) {
  std::printf(
      "agents %d: exit %d, wall %.0f ms, controller CPU %.0f ms, peak RSS %.1f MiB, "
      "peak threads %ld; agents' CPU meanwhile %.0f ms; late StartFloods acks %d\n",
      f.agents, f.exit_code, f.wall_ms, f.cpu_ms, f.peak_rss_kb / 1024.0, f.peak_threads,
      f.agents_cpu_ms, f.late_acks);
  std::printf("  phases (ms):");
  for (const auto& [k, v] : f.phase_ms) std::printf(" %s %.1f", k.c_str(), v);
  if (f.phase_ms.empty()) std::printf(" not reported (result.json has no phase_ms)");
  std::printf("\n  controller CPU per phase (ms):");
  for (const auto& [k, v] : f.phase_cpu_ms) std::printf(" %s %.1f", k.c_str(), v);
  if (f.phase_cpu_ms.empty()) std::printf(" not reported (result.json has no phase_cpu_ms)");
  if (auto sum = PrepareStartCollect(f.phase_cpu_ms)) {
    std::printf("; prepare + start + collect %.1f", *sum);
  }
  std::printf(
      "\n  start skew (run's start_skew_ms): %s; lateness across %d agents: p50 %.3f ms, "
      "p99 %.3f ms; skew at p99 (p99 - min) %.3f ms; floods complete %d/%d\n",
      f.skew_reported ? absl::StrCat(f.skew_ms, " ms").c_str() : "not_observed", f.starts_measured,
      f.lateness_p50, f.lateness_p99, f.lateness_spread_p99, f.floods_complete, f.agents);
  auto distribution = [](const char* what, const std::vector<double>& v) {
    if (v.empty()) return std::printf("  %s: not_observed\n", what), void();
    std::printf(
        "  %s (ms): min %.3f p10 %.3f p25 %.3f p50 %.3f p75 %.3f p90 %.3f p99 %.3f max %.3f\n",
        what, v.front(), Percentile(v, 0.10), Percentile(v, 0.25), Percentile(v, 0.50),
        Percentile(v, 0.75), Percentile(v, 0.90), Percentile(v, 0.99), v.back());
  };
  distribution("lateness on each agent's clock", f.lateness);
  distribution("lateness on the one clock (lateness + estimated offset; true offset 0)",
               f.one_clock);
}

// Least squares y = a + b x over the sizes; returns {a, b}.
std::pair<double, double> Fit(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  const double b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  return {(sy - b * sx) / n, b};
}

TEST(FleetBench, FanOutToRealAgentsOnUnixSockets) {
  // Each agent holds a few descriptors; the controller one channel per agent (fd cap 20,000).
  std::vector<Figures> all;
  for (int n : g_sizes) {
    Figures f = Measure(n);
    Print(f);
    ASSERT_EQ(f.exit_code, 0) << f.output.substr(0, 4000);
    EXPECT_EQ(f.floods_complete, n) << f.output.substr(0, 4000);
    all.push_back(std::move(f));
  }
  if (all.size() < 2) return;
  std::printf("projection to 1,000 agents (linear fit per phase, time = a + b * agents):\n");
  // Keys: "wall", "cpu" (the whole process), a phase's wall time, "cpu:" + a phase's CPU time.
  std::vector<std::string> keys = {"wall", "cpu"};
  for (const auto& [k, v] : all.back().phase_ms) keys.push_back(k);
  for (const auto& [k, v] : all.back().phase_cpu_ms) keys.push_back("cpu:" + k);
  std::map<std::string, double> projected, projected_cpu;  // by phase, at 1,000 agents
  for (const std::string& key : keys) {
    const bool cpu_phase = key.rfind("cpu:", 0) == 0;
    const std::string phase = cpu_phase ? key.substr(4) : key;
    std::vector<double> x, y;
    for (const Figures& f : all) {
      const auto& phases = cpu_phase ? f.phase_cpu_ms : f.phase_ms;
      double v = 0;
      if (key == "wall") {
        v = f.wall_ms;
      } else if (key == "cpu") {
        v = f.cpu_ms;
      } else if (auto it = phases.find(phase); it != phases.end()) {
        v = it->second;
      } else {
        continue;
      }
      x.push_back(f.agents);
      y.push_back(v);
    }
    if (x.size() < 2) continue;
    const auto [a, b] = Fit(x, y);
    const double at1000 = a + b * 1000;
    std::printf("  %-8s a %.1f ms + b %.3f ms/agent -> %.0f ms at 1,000 (ratio %.2f to %d)\n",
                key.c_str(), a, b, at1000, at1000 / y.back(), static_cast<int>(x.back()));
    (cpu_phase ? projected_cpu : projected)[phase] = at1000;
  }
  std::printf(
      "  prepare + start + collect at 1,000: wall %.0f ms, controller CPU %.0f ms (target: "
      "under 2,000 ms)\n",
      PrepareStartCollect(projected).value_or(0), PrepareStartCollect(projected_cpu).value_or(0));
}

}  // namespace
}  // namespace synq::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--sample-interval") synq::testing::g_sample_interval = argv[i + 1];
    if (arg == "--synq") synq::testing::g_synq = argv[i + 1];
    if (arg == "--agents" || arg == "--sizes") {
      synq::testing::g_sizes.clear();
      for (absl::string_view s : absl::StrSplit(argv[i + 1], ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(s, &n) || n < 1 || n > 1000) {
          std::fprintf(stderr, "%s: '%s' is not a count of agents in [1, 1000]\n", arg.c_str(),
                       std::string(s).c_str());
          return 2;
        }
        synq::testing::g_sizes.push_back(n);
      }
    }
  }
  return RUN_ALL_TESTS();
}
