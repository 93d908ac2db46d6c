// Proves that `synq run --results-dir DIR` keeps every run's result.json, report.html and JUnit
// file in DIR/<UTC time>-<scenario>/, points DIR/latest at the newest passing run, prints one
// summary line per run, and that `--baseline latest` makes a nightly job work: the first run into
// an empty DIR runs without a baseline (says so, exits 0), the next one compares with it, and a
// regression exits 1 and leaves DIR/latest on the last good run.
//
// Expected figures, from the kernel: listen(100) is capped to net.core.somaxconn (16, then 8); a
// never-accepting listener's accept queue holds backlog_effective + 1 connections, so with one
// connect at a time 17 (somaxconn 16) or 9 (somaxconn 8) of 20 connects complete and the rest
// time out after the 1 s connect_timeout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

std::string Scenario(int somaxconn) {
  return "name: nightly backlog\n"  // the space becomes '-' in the folder name
         "hosts:\n"
         "  server: {}\n"
         "  client: {}\n"
         "settings:\n"
         "  server: { net.core.somaxconn: " +
         std::to_string(somaxconn) +
         " }\n"
         "listeners:\n"
         "  - { name: l1, host: server, backlog: 100, accept: never }\n"
         "floods:\n"
         "  - { name: f1, host: client, target: l1, connections: 20, concurrency: 1,\n"
         "      connect_timeout: 1s, hold: 200ms }\n";
}

// The run folders in `dir` (everything but latest), sorted: names start with the UTC time.
std::vector<std::string> RunFolders(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() != "latest") out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string Latest(const std::string& dir) {
  std::error_code ec;
  return fs::read_symlink(dir + "/latest", ec).string();
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

class ResultsDir : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: embedded hosts are network namespaces";
  }
  ProcessResult Synq(int somaxconn, const std::vector<std::string>& extra) {
    const std::string file =
        files_.Write("somaxconn-" + std::to_string(somaxconn) + ".yaml", Scenario(somaxconn));
    std::vector<std::string> argv = {Binary("controller/synq"), "run", file, "--results-dir",
                                     results_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProcess(argv);
  }
  TempDir files_;
  TempDir volume_;
  std::string results_ = volume_.path() + "/results";  // created by synq, like a fresh PVC dir
};

TEST_F(ResultsDir, NightlyRunsCompareWithLastPassingRunAndRegressionExitsOne) {
  // Night 1: nothing in the folder yet. Runs without a baseline, says so, passes.
  const ProcessResult first = Synq(16, {"--baseline", "latest"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("no " + results_ + "/latest yet (first run"));
  EXPECT_THAT(first.output, HasSubstr("synq-summary scenario=nightly backlog run=1/1 "
                                      "verdict=pass duration_ms="));
  EXPECT_THAT(first.output, HasSubstr(" flood.f1=20/17/0/0/3 "));
  EXPECT_THAT(first.output,
              HasSubstr(" listener.l1.backlog=16 listener.l1.accepted=0 listener.l1.peak=17"));
  std::vector<std::string> runs = RunFolders(results_);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_THAT(runs[0], ContainsRegex("^[0-9]{8}T[0-9]{6}Z-nightly-backlog$"));
  EXPECT_EQ(Latest(results_), runs[0]);  // relative: works wherever the volume is mounted
  for (const char* f : {"result.json", "report.html", "junit.xml"}) {
    EXPECT_TRUE(fs::exists(results_ + "/latest/" + f)) << f;
  }
  EXPECT_EQ(ReadJson(results_ + "/latest/result.json").value("baseline_file", ""), "");

  // Night 2: the same measurement. Compared with night 1 (latency is machine noise here, so its
  // tolerance is wide; the counts must match within the default 10%), passes, becomes latest.
  const ProcessResult second = Synq(
      16, {"--baseline", "latest", "--tolerance-field", "floods.*.connect_latency_ms.*=10000%"});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("verdict=pass baseline=compared"));
  runs = RunFolders(results_);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(Latest(results_), runs[1]);
  const nlohmann::json night2 = ReadJson(results_ + "/" + runs[1] + "/result.json");
  // The baseline is recorded as the run folder it was, not as the moving "latest".
  EXPECT_EQ(night2.value("baseline_file", ""), results_ + "/" + runs[0] + "/result.json");

  // Night 3: somaxconn 8 (a smaller backlog). 9 of 20 established against 17: exit 1, named in
  // the summary and the log; its outputs are kept, latest stays on night 2.
  const ProcessResult third = Synq(
      8, {"--baseline", "latest", "--tolerance-field", "floods.*.connect_latency_ms.*=10000%"});
  EXPECT_EQ(third.exit_code, 1) << third.output;
  EXPECT_THAT(third.output, HasSubstr("verdict=FAIL(regression) baseline=compared"));
  EXPECT_THAT(third.output, HasSubstr(" flood.f1=20/9/0/0/11 "));
  EXPECT_THAT(third.output, HasSubstr("REGRESSION floods.f1.established: 17 -> 9"));
  EXPECT_THAT(third.output, HasSubstr("REGRESSION listeners.l1.backlog_effective: 16 -> 8"));
  EXPECT_THAT(third.output, HasSubstr(results_ + "/latest unchanged (this run failed)"));
  runs = RunFolders(results_);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_TRUE(fs::exists(results_ + "/" + runs[2] + "/junit.xml"));
  std::ifstream junit(results_ + "/" + runs[2] + "/junit.xml");
  const std::string junit_text((std::istreambuf_iterator<char>(junit)),
                               std::istreambuf_iterator<char>());
  EXPECT_THAT(junit_text, HasSubstr("type=\"baseline_regression\""));
  EXPECT_EQ(Latest(results_), runs[1]);
}

TEST_F(ResultsDir, BaselineLatestWithoutResultsDirAndOutTogetherAreBadInput) {
  const std::string file = files_.Write("s.yaml", Scenario(16));
  const ProcessResult no_dir =
      RunProcess({Binary("controller/synq"), "run", file, "--baseline", "latest"});
  EXPECT_EQ(no_dir.exit_code, 2) << no_dir.output;
  EXPECT_THAT(no_dir.output, HasSubstr("--baseline latest: only with --results-dir"));
  const ProcessResult both = RunProcess({Binary("controller/synq"), "run", file, "--results-dir",
                                         results_, "--out", files_.path() + "/out"});
  EXPECT_EQ(both.exit_code, 2) << both.output;
  EXPECT_THAT(both.output, HasSubstr("excludes"));
  // A latest that points at a removed run folder is a broken volume, not a first night.
  fs::create_directories(results_);
  fs::create_directory_symlink("20000101T000000Z-gone", results_ + "/latest");
  const ProcessResult dangling = RunProcess(
      {Binary("controller/synq"), "run", file, "--results-dir", results_, "--baseline", "latest"});
  EXPECT_EQ(dangling.exit_code, 2) << dangling.output;
  EXPECT_THAT(dangling.output, HasSubstr("20000101T000000Z-gone/result.json does not exist"));
  EXPECT_EQ(RunFolders(results_).size(), 0u) << "nothing run, nothing kept";
}

}  // namespace
}  // namespace synq::testing
