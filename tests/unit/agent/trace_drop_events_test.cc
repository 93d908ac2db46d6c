// Proves that trace instances left by an agent that died (no destructor ran) are removed by the
// next agent's start-up sweep, a SIGKILLed agent not yet reaped (a zombie) included, that a live
// synq-agent's instances and instances not named by synq are left alone, and that the instance
// journal of a state dir removes what it lists and refuses anything that is not an instance name.
#include "agent/trace/drop_events.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"

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

// A child named synq-agent (PR_SET_NAME) that exits and is not reaped is a zombie with the
// agent's comm: gone, though /proc still lists it. Another that pauses is a live agent.
TEST(RemoveStaleTraceInstances, ZombieAgentIsGoneLiveAgentStays) {
  if (!TracefsUnavailableReason().empty()) GTEST_SKIP() << TracefsUnavailableReason();
  const pid_t zombie = fork();
  ASSERT_GE(zombie, 0);
  if (zombie == 0) {
    prctl(PR_SET_NAME, "synq-agent");
    _exit(0);
  }
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t live = fork();
  ASSERT_GE(live, 0);
  if (live == 0) {
    prctl(PR_SET_NAME, "synq-agent");
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  close(ready[1]);
  // The zombie has exited once its state reads Z.
  for (int i = 0; i < 200; ++i) {
    std::string stat;
    std::ifstream in(absl::StrCat("/proc/", zombie, "/stat"));
    std::getline(in, stat);
    if (stat.find(") Z") != std::string::npos) break;
    usleep(10'000);
  }
  const std::string of_zombie = absl::StrCat(kInstances, "/synq-", zombie, "-0");
  const std::string of_live = absl::StrCat(kInstances, "/synq-", live, "-0");
  ASSERT_EQ(mkdir(of_zombie.c_str(), 0700), 0) << of_zombie;
  ASSERT_EQ(mkdir(of_live.c_str(), 0700), 0) << of_live;

  RemoveStaleTraceInstances();
  EXPECT_FALSE(std::filesystem::exists(of_zombie)) << "a zombie agent counted as alive";
  EXPECT_TRUE(std::filesystem::exists(of_live)) << "a live agent's instance was removed";
  kill(live, SIGKILL);
  waitpid(live, nullptr, 0);
  waitpid(zombie, nullptr, 0);
  rmdir(of_live.c_str());
  rmdir(of_zombie.c_str());
}

// The journal's instances belong to the previous agent on this state dir: removed whatever
// their pid looks like (here this live process's own), and the journal goes.
TEST(RemoveTraceInstancesFromJournal, RemovesListedInstancesAndTheJournal) {
  if (!TracefsUnavailableReason().empty()) GTEST_SKIP() << TracefsUnavailableReason();
  const std::string dir = ::testing::TempDir() + "synq-trace-journal-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string name = absl::StrCat("synq-", getpid(), "-9999");
  const std::string instance = absl::StrCat(kInstances, "/", name);
  ASSERT_EQ(mkdir(instance.c_str(), 0700), 0) << instance;
  const std::string journal = dir + "/trace-journal.json";
  ASSERT_TRUE(common::WriteFileAtomically(journal, "{\"instances\": [\"" + name + "\"]}").ok());
  auto removed = RemoveTraceInstancesFromJournal(journal);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, std::vector<std::string>{name});
  EXPECT_FALSE(std::filesystem::exists(instance));
  EXPECT_FALSE(std::filesystem::exists(journal));
  rmdir(instance.c_str());
  std::filesystem::remove_all(dir);
}

TEST(RemoveTraceInstancesFromJournal, NameThatIsNotAnInstanceIsRefusedWithThePath) {
  const std::string dir = ::testing::TempDir() + "synq-trace-bad-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string journal = dir + "/trace-journal.json";
  for (const std::string& text : {std::string("{\"instances\": [\"../../events\"]}"),
                                  std::string("{\"instances\": [\"synq-1-0/..\"]}"),
                                  std::string("not json")}) {
    ASSERT_TRUE(common::WriteFileAtomically(journal, text).ok());
    auto removed = RemoveTraceInstancesFromJournal(journal);
    ASSERT_FALSE(removed.ok()) << text;
    EXPECT_NE(removed.status().message().find(journal), std::string::npos) << removed.status();
    EXPECT_TRUE(std::filesystem::exists(journal)) << text;
  }
  EXPECT_TRUE(RemoveTraceInstancesFromJournal(dir + "/none.json").ok()) << "no journal is fine";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace synq::agent
