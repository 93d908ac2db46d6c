// Proves `synq lab up/down`: hosts stay up between commands with reachable agents, a scenario
// can use them by address (targets resolve to the lab host's address), and down removes it all,
// leftovers of runs whose synq and reaper were both killed (namespaces, /run/synq/run-<pid>)
// included.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

TEST(Lab, UpKeepsHostsForScenariosAndDownRemovesThem) {
  if (!IsRoot()) GTEST_SKIP() << "needs root: lab hosts are network namespaces";
  TempDir dir;
  const std::string lab = dir.Write("lab.yaml", R"(name: lab
hosts: { server: {}, client: {} }
)");
  ProcessResult up = RunProcess({Binary("controller/synq"), "lab", "up", lab});
  ASSERT_EQ(up.exit_code, 0) << up.output;
  struct Down {
    ~Down() { RunProcess({Binary("controller/synq"), "lab", "down"}); }
  } down_on_exit;
  EXPECT_NE(up.output.find("unix:/run/synq/lab/server/agent.sock"), std::string::npos) << up.output;
  EXPECT_NE(up.output.find("198.18.0.2"), std::string::npos) << up.output;

  ProcessResult again = RunProcess({Binary("controller/synq"), "lab", "up", lab});
  EXPECT_EQ(again.exit_code, 2) << "a second lab up must refuse: " << again.output;

  const std::string scenario = dir.Write("s.yaml", R"(name: on-lab
hosts:
  server: { agent: "unix:/run/synq/lab/server/agent.sock" }
  client: { agent: "unix:/run/synq/lab/client/agent.sock" }
settings:
  server: { net.core.somaxconn: 5 }
listeners: [ { name: l1, host: server, backlog: 50 } ]
floods: [ { name: f1, host: client, target: l1, connections: 8, connect_timeout: 300ms, hold: 100ms } ]
)");
  SynqRun r = RunSynq(scenario, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto& run = r.result["runs"][0];
  EXPECT_EQ(run["floods"]["f1"]["established"].get<int>(), 6);
  EXPECT_EQ(run["listeners"]["l1"]["backlog_effective"].get<int>(), 5);
  EXPECT_EQ(run["listeners"]["l1"]["address"].get<std::string>().rfind("0.0.0.0:", 0), 0u);

  ProcessResult down = RunProcess({Binary("controller/synq"), "lab", "down"});
  EXPECT_EQ(down.exit_code, 0) << down.output;
  for (const auto& ns : SynqNamespaces()) EXPECT_NE(ns.rfind("synq-lab", 0), 0u) << ns;
  ProcessResult info =
      RunProcess({Binary("controller/synq"), "info", "unix:/run/synq/lab/server/agent.sock"},
                 std::chrono::seconds(30));
  EXPECT_EQ(info.exit_code, 3) << "agent must be gone: " << info.output;
}

TEST(Lab, DownRemovesNamespacesAndRunDirsOfDeadControllers) {
  if (!IsRoot()) GTEST_SKIP() << "needs root: lab hosts are network namespaces";
  // A pid no process has now: a child that exited and was reaped stands for a killed synq.
  const pid_t dead = fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) _exit(0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
  const std::string ns = absl::StrCat("synq-", dead, "-server");
  const std::string run_dir = absl::StrCat("/run/synq/run-", dead);
  ASSERT_EQ(RunProcess({"/usr/bin/env", "ip", "netns", "add", ns}).exit_code, 0);
  std::filesystem::create_directories(run_dir + "/server");
  // A live controller's leftovers-to-be stay: this process is alive.
  const std::string live_dir = absl::StrCat("/run/synq/run-", getpid());
  std::filesystem::create_directories(live_dir);

  ProcessResult down = RunProcess({Binary("controller/synq"), "lab", "down"});
  const std::vector<std::string> left = SynqNamespaces();
  const bool ns_left = std::find(left.begin(), left.end(), ns) != left.end();
  if (ns_left) RunProcess({"/usr/bin/env", "ip", "netns", "del", ns});
  EXPECT_FALSE(ns_left) << down.output;
  EXPECT_FALSE(std::filesystem::exists(run_dir)) << down.output;
  EXPECT_TRUE(std::filesystem::exists(live_dir)) << "a live controller's dir was removed";
  std::error_code ec;
  std::filesystem::remove_all(run_dir, ec);
  std::filesystem::remove_all(live_dir, ec);
}

}  // namespace
}  // namespace synq::testing
