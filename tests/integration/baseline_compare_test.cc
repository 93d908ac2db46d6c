// Proves that comparing a real somaxconn 16 run with a real somaxconn 8 run (real synq, real
// agents, embedded hosts in namespaces) reports the changed effective backlog and established
// count as regressions with both values and the tolerance, shows the settings difference side by
// side with the kernel releases, and that the compared result renders to a JUnit file that
// validates against the JUnit schema.
//
// Expected figures, from the kernel: listen(100) is capped to net.core.somaxconn at listen time
// (backlog_effective = somaxconn); a never-accepting listener's accept queue holds
// backlog_effective + 1 connections (the full check is `>`), so with one connection at a time
// 17 (somaxconn 16) or 9 (somaxconn 8) of 20 connects complete and the rest time out after 1 s.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "controller/result/junit.h"
#include "controller/result/result_json.h"
#include "controller/verdict/baseline.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

namespace v1 = ::synq::result::v1;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

std::string Scenario(int somaxconn) {
  return "name: somaxconn-compare\n"
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
         "      connect_timeout: 1s, hold: 500ms }\n";
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

const v1::BaselineCheck* FindCheck(const v1::Run& run, const std::string& field) {
  for (const auto& c : run.baseline().checks()) {
    if (c.field() == field) return &c;
  }
  return nullptr;
}

class BaselineCompare : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: embedded hosts are network namespaces";
  }
  // Runs the scenario with `somaxconn` and reads its result.json as the typed result.
  v1::Result Run(int somaxconn, const std::string& out) {
    const std::string file =
        files_.Write("somaxconn-" + std::to_string(somaxconn) + ".yaml", Scenario(somaxconn));
    SynqRun r = RunSynq(file, out);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    absl::StatusOr<v1::Result> result = controller::result::ReadResultFile(out + "/result.json");
    EXPECT_TRUE(result.ok()) << result.status() << "\n" << r.output;
    return result.ok() ? *result : v1::Result{};
  }
  TempDir files_;
  TempDir out16_;
  TempDir out8_;
};

TEST_F(BaselineCompare, SomaxconnSixteenAgainstEightRegressesBacklogAndEstablished) {
  const v1::Result old_result = Run(16, out16_.path());
  const v1::Result new_result = Run(8, out8_.path());
  ASSERT_EQ(old_result.runs_size(), 1);
  ASSERT_EQ(new_result.runs_size(), 1);
  // The runs measured what the kernel mechanism says (else the comparison proves nothing).
  ASSERT_EQ(old_result.runs(0).listeners().at("l1").backlog_effective(), 16);
  ASSERT_EQ(new_result.runs(0).listeners().at("l1").backlog_effective(), 8);

  const std::string old_file = out16_.path() + "/result.json";
  const std::string new_file = out8_.path() + "/result.json";
  controller::verdict::Tolerances tolerances;  // the default 10%
  v1::Result compared = new_result;
  EXPECT_FALSE(
      controller::verdict::CompareWithBaseline(old_result, old_file, tolerances, &compared));
  const v1::Run& run = compared.runs(0);
  EXPECT_EQ(run.baseline().baseline_run_index(), 0);
  EXPECT_FALSE(run.baseline().passed());

  const v1::BaselineCheck* backlog = FindCheck(run, "listeners.l1.backlog_effective");
  ASSERT_NE(backlog, nullptr);
  EXPECT_FALSE(backlog->passed());
  EXPECT_EQ(backlog->baseline(), 16);
  EXPECT_EQ(backlog->current(), 8);
  EXPECT_EQ(backlog->tolerance_percent(), 10);
  const v1::BaselineCheck* established = FindCheck(run, "floods.f1.established");
  ASSERT_NE(established, nullptr);
  EXPECT_FALSE(established->passed());
  EXPECT_EQ(established->baseline(), 17);
  EXPECT_EQ(established->current(), 9);
  // Both ran 20 attempts: an unchanged field passes.
  const v1::BaselineCheck* attempted = FindCheck(run, "floods.f1.attempted");
  ASSERT_NE(attempted, nullptr);
  EXPECT_TRUE(attempted->passed());
  EXPECT_EQ(attempted->current(), 20);

  const std::string text =
      controller::verdict::RenderComparison(old_result, old_file, new_result, new_file, tolerances);
  SCOPED_TRACE(text);
  std::cout << text;  // what `synq compare` prints, for whoever reads the test log
  EXPECT_THAT(text, HasSubstr("REGRESSION listeners.l1.backlog_effective: 16 -> 8 (-50.0%), "
                              "tolerance 10%"));
  EXPECT_THAT(text, HasSubstr("REGRESSION floods.f1.established: 17 -> 9 (-47.1%), "
                              "tolerance 10%"));
  EXPECT_THAT(text, ContainsRegex("net\\.core\\.somaxconn +16 +8 +<- changed"));
  // Same machine, same kernel release on both sides, not marked.
  utsname uts{};
  ASSERT_EQ(uname(&uts), 0);
  const std::string release = uts.release;
  const size_t kernel = text.find("    kernel ");
  ASSERT_NE(kernel, std::string::npos);
  const std::string kernel_row = text.substr(kernel, text.find('\n', kernel) - kernel);
  EXPECT_THAT(kernel_row, ContainsRegex("^    kernel +[^ ]+ +[^ ]+$"));
  EXPECT_EQ(Count(kernel_row, release), 2u) << kernel_row;
  EXPECT_THAT(text, HasSubstr("\nREGRESSION: "));

  // The compared result as a JUnit file: valid against the schema, the regression in it.
  const std::string junit = out8_.path() + "/junit.xml";
  std::ofstream(junit) << controller::result::RenderJUnit(compared);
  const std::string cmd = "xmllint --noout --schema '" + Source("tests/data/junit/junit.xsd") +
                          "' '" + junit + "' 2>&1";
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
  EXPECT_THAT(controller::result::RenderJUnit(compared),
              HasSubstr("<failure message=\"floods.f1.established: 17 -&gt; 9 (-47.1%), "
                        "tolerance 10%\" type=\"baseline_regression\">"));
}

}  // namespace
}  // namespace synq::testing
