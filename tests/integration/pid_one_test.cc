// Proves that embedded hosts work when synq is pid 1, as it is when it is a container's
// entrypoint: the agents synq starts with --parent-death must not take a parent pid of 1 to mean
// their parent died. synq runs as pid 1 of a new pid namespace (`unshare --pid --fork
// --mount-proc`) and runs an embedded scenario; before the fix its agents exited at start with
// "parent already gone" and synq exited 3. And that the check still sees a parent that is gone:
// an agent told its parent is a process that is not its parent refuses to start.
//
// Expected figures, from the kernel: listen(100) capped to somaxconn 16; a never-accepting
// listener holds backlog_effective + 1 = 17 connections, the other 3 of 20 time out after 1 s.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using ::testing::HasSubstr;

TEST(PidOne, EmbeddedHostsRunWhenSynqIsPidOne) {
  if (!IsRoot()) GTEST_SKIP() << "needs root: a pid namespace and embedded hosts";
  if (!std::filesystem::exists("/usr/bin/unshare")) GTEST_SKIP() << "needs unshare (util-linux)";
  TempDir dir;
  const std::string file = dir.Write("s.yaml",
                                     "name: pid-one\n"
                                     "hosts: { server: {}, client: {} }\n"
                                     "settings:\n"
                                     "  server: { net.core.somaxconn: 16 }\n"
                                     "listeners:\n"
                                     "  - { name: l1, host: server, backlog: 100, accept: never }\n"
                                     "floods:\n"
                                     "  - { name: f1, host: client, target: l1, connections: 20,\n"
                                     "      concurrency: 1, connect_timeout: 1s, hold: 200ms }\n");
  const std::string out = dir.path() + "/out";
  // A shell inside the namespace prints its pid first, so the test shows synq really was pid 1
  // (exec keeps the pid).
  const ProcessResult r =
      RunProcess({"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "/bin/sh", "-c",
                  "echo \"pid in namespace: $$\"; exec \"$0\" run \"$1\" --out \"$2\"",
                  Binary("controller/synq"), file, out});
  EXPECT_THAT(r.output, HasSubstr("pid in namespace: 1\n"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("parent already gone")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(out + "/result.json");
  const nlohmann::json result = nlohmann::json::parse(in, nullptr, false);
  const nlohmann::json& flood = result["runs"][0]["floods"]["f1"];
  EXPECT_EQ(flood.value("attempted", 0), 20) << result.dump();
  EXPECT_EQ(flood.value("established", 0), 17);
  EXPECT_EQ(flood.value("timed_out", 0), 3);
  // The run's namespaces ("synq-1-*": synq's pid was 1) are gone with it.
  for (const auto& ns : SynqNamespaces()) EXPECT_NE(ns.rfind("synq-1-", 0), 0u) << ns;
}

TEST(PidOne, AgentWhoseParentIsNotTheGivenPidRefusesToStart) {
  TempDir dir;
  // The test process is the agent's parent; pid 1 (init) is not: as if the parent that passed
  // its pid had died and the agent had been re-parented before it armed the check.
  const ProcessResult r =
      RunProcess({Binary("agent/synq-agent"), "--listen", "unix:" + dir.path() + "/a.sock",
                  "--state-dir", dir.path() + "/state", "--parent-death", "--parent-pid", "1"},
                 std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--parent-pid 1: parent already gone (parent is now "));
}

}  // namespace
}  // namespace synq::testing
