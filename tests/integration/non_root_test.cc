// Proves the embedded default without root: hosts share the current namespace (loopback), a
// plain scenario runs, and one that changes settings is refused with a clear message.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

constexpr char kNobody[] = "65534";

ProcessResult RunAsNobody(const std::vector<std::string>& argv) {
  std::vector<std::string> full = {"/usr/bin/setpriv", "--reuid", kNobody,
                                   "--regid",          kNobody,   "--clear-groups",
                                   "--inh-caps=-all"};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunProcess(full);
}

class NonRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root to drop to an unprivileged user";
    if (!std::filesystem::exists("/usr/bin/setpriv")) GTEST_SKIP() << "setpriv not installed";
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
  }
  TempDir dir_;
};

TEST_F(NonRoot, PlainScenarioRunsOnLoopbackInTheCurrentNamespace) {
  const auto before = SynqNamespaces();
  ProcessResult p = RunAsNobody({Binary("controller/synq"), "run",
                                 Source("examples/single-host.yaml"), "--out", dir_.path()});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find("accepted:200"), std::string::npos) << p.output;
  EXPECT_EQ(SynqNamespaces(), before) << "no namespaces without root";
}

TEST_F(NonRoot, ScenarioChangingSettingsIsRefusedNamingTheHost) {
  ProcessResult p = RunAsNobody({Binary("controller/synq"), "run",
                                 Source("examples/backlog-sweep.yaml"), "--out", dir_.path()});
  EXPECT_EQ(p.exit_code, 2) << p.output;
  EXPECT_NE(p.output.find("settings.server"), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("needs root"), std::string::npos) << p.output;
}

}  // namespace
}  // namespace synq::testing
