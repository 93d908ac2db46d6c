// Proves the results folder's naming and its latest link on a real file system: run folders are
// named by UTC time and a file-safe scenario name, two runs in one second get distinct folders,
// latest is a relative symlink replaced in place, and LatestResultFile tells a first run (no
// latest) from a broken volume (latest naming a folder without result.json). Also proves the
// summary line leaves out what was not measured.
#include "controller/result/results_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "controller/result/summary_line.h"

namespace synq::controller::result {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::synq::result::v1;
using ::testing::HasSubstr;
using ::testing::Not;

class ResultsDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/synq-results-dir-XXXXXX";
    root_ = mkdtemp(tmpl.data());
    dir_ = root_ + "/results";
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_;
  std::string dir_;
  // 2026-12-02 06:25:27 UTC.
  absl::Time when_ = absl::FromUnixSeconds(1796192727);
};

TEST_F(ResultsDirTest, RunFolderIsUtcTimeAndSafeScenarioNameAndUniqueWithinASecond) {
  auto first = CreateRunDir(dir_, "nightly backlog/v2", when_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, dir_ + "/20261202T062527Z-nightly-backlog-v2");
  auto second = CreateRunDir(dir_, "nightly backlog/v2", when_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, dir_ + "/20261202T062527Z-nightly-backlog-v2-2");
  auto dots = CreateRunDir(dir_, "..", when_);
  ASSERT_TRUE(dots.ok()) << dots.status();
  EXPECT_EQ(*dots, dir_ + "/20261202T062527Z-scenario");
  EXPECT_TRUE(fs::is_directory(*first) && fs::is_directory(*second));
}

TEST_F(ResultsDirTest, LatestIsRelativeAndReplacedAndResolvesToTheRunFolder) {
  auto none = LatestResultFile(dir_);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, "") << "no latest yet: a first run";

  auto a = CreateRunDir(dir_, "s", when_);
  auto b = CreateRunDir(dir_, "s", when_ + absl::Hours(24));
  ASSERT_TRUE(a.ok() && b.ok());
  std::ofstream(*a + "/result.json") << "{}";
  std::ofstream(*b + "/result.json") << "{}";
  ASSERT_TRUE(UpdateLatest(dir_, *a).ok());
  EXPECT_EQ(fs::read_symlink(dir_ + "/latest"), fs::path(*a).filename());
  ASSERT_TRUE(UpdateLatest(dir_, *b).ok());
  EXPECT_EQ(fs::read_symlink(dir_ + "/latest"), "20261203T062527Z-s");
  auto latest = LatestResultFile(dir_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(*latest, *b + "/result.json");
  // No temporary link left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 3);

  // Moved elsewhere (another mount point of the same volume): the relative link still works.
  const std::string moved = root_ + "/mounted-elsewhere";
  fs::rename(dir_, moved);
  auto after_move = LatestResultFile(moved);
  ASSERT_TRUE(after_move.ok()) << after_move.status();
  EXPECT_EQ(*after_move, moved + "/20261203T062527Z-s/result.json");
}

TEST_F(ResultsDirTest, LatestWithoutResultFileIsAnErrorNamingThePath) {
  auto a = CreateRunDir(dir_, "s", when_);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(UpdateLatest(dir_, *a).ok());
  auto latest = LatestResultFile(dir_);
  ASSERT_FALSE(latest.ok());
  EXPECT_THAT(std::string(latest.status().message()),
              HasSubstr(*a + "/result.json does not exist"));
}

TEST(SummaryLine, NamesVerdictAndFiguresAndLeavesOutWhatWasNotMeasured) {
  v1::Result result;
  result.set_scenario("s");
  v1::Run& run = *result.add_runs();
  run.set_duration_ms(1500);
  v1::Flood& f = (*run.mutable_floods())["f1"];
  f.set_attempted(20);
  f.set_established(0);
  f.set_timed_out(20);  // nothing connected: no latency was measured
  (*run.mutable_floods())["f1@clients-1"].set_attempted(10);  // a group member row
  v1::Listener& l = (*run.mutable_listeners())["l1"];
  l.set_accept_queue_peak(3);  // backlog_effective not observed
  run.add_expectations()->set_passed(false);
  const std::string line = RenderSummaryLine(result, run);
  EXPECT_EQ(line,
            "synq-summary scenario=s run=1/1 verdict=FAIL(expectations) duration_ms=1500 "
            "flood.f1=20/0/0/0/20 listener.l1.accepted=0 listener.l1.peak=3");
  EXPECT_THAT(line, Not(HasSubstr("p99_ms")));
  EXPECT_THAT(line, Not(HasSubstr("skew_ms")));
}

}  // namespace
}  // namespace synq::controller::result
