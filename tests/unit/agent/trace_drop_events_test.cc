// Proves that trace instances left by an agent that died (no destructor ran) are removed by the
// next agent's start-up sweep, and that instances not named by synq are left alone.
#include "agent/trace/drop_events.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"

namespace synq::agent {
namespace {

constexpr char kInstances[] = "/sys/kernel/tracing/instances";

TEST(RemoveStaleTraceInstances, AnInstanceOfADeadAgentIsRemovedOthersStay) {
  if (!TracefsUnavailableReason().empty()) GTEST_SKIP() << TracefsUnavailableReason();
  // A pid that certainly belongs to no process now: a child that has exited and been reaped.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  const std::string stale = absl::StrCat(kInstances, "/synq-", child, "-0");
  const std::string foreign = absl::StrCat(kInstances, "/synqtest-", getpid());
  ASSERT_EQ(mkdir(stale.c_str(), 0700), 0) << stale;
  ASSERT_EQ(mkdir(foreign.c_str(), 0700), 0) << foreign;

  const std::vector<std::string> removed = RemoveStaleTraceInstances();
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_NE(std::find(removed.begin(), removed.end(), absl::StrCat("synq-", child, "-0")),
            removed.end());
  EXPECT_TRUE(std::filesystem::exists(foreign)) << "not a synq instance: left alone";
  rmdir(foreign.c_str());
  rmdir(stale.c_str());
}

}  // namespace
}  // namespace synq::agent
