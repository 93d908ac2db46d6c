// Proves mutual TLS on the control plane, with certificates issued by deploy/certs/issue-certs.sh
// (so the shipped script is tested too) and a real synq-agent on 127.0.0.1:0 with --tls-*:
// a controller without a certificate is refused and told the agent wants mutual TLS; one whose
// certificate another CA signed is refused by the agent; one that trusts only another CA names
// the agent's certificate as from the wrong CA; a wrong server name and an expired certificate
// are named with the file; the right certificate works for `synq info` (which shows mTLS and the
// allow-list) and for a small `synq run` through a scenario `tls:` block. An agent asked to listen
// on a non-loopback address without TLS refuses to start unless --insecure, and then `synq info`
// shows it insecure.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Waits for an agent's --port-file; returns the address in it ("" after 10 s).
class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string script = Source("deploy/certs/issue-certs.sh");
    // The fleet: CA 1 with the agent (named by IP, as the controller dials it) and the
    // controller; CA 2, unrelated, with its own controller; an expired controller cert of CA 1.
    for (const std::vector<std::string>& argv :
         {std::vector<std::string>{"/usr/bin/env", "bash", script, dir_->path() + "/fleet",
                                   "agent=127.0.0.1"},
          {"/usr/bin/env", "bash", script, dir_->path() + "/other"},
          {"/usr/bin/env", "bash", script, dir_->path() + "/fleet", "--days", "-3", "--controller",
           "old"}}) {
      ProcessResult p = RunProcess(argv, std::chrono::seconds(60));
      // A failure here fails every test (in SetUp), not silently skips them.
      if (p.exit_code != 0) {
        setup_error_ = absl::StrCat("issue-certs.sh failed (", p.exit_code, "): ", p.output);
        return;
      }
    }
    // Trusts both CAs: the agent's certificate passes, so only the agent can refuse ours.
    std::ofstream(dir_->path() + "/both-cas.pem")
        << ReadFile(dir_->path() + "/fleet/ca.pem") << ReadFile(dir_->path() + "/other/ca.pem");
    const std::string f = dir_->path() + "/fleet";
    agent_ = Spawn(
        {Binary("agent/synq-agent"), "--listen", "127.0.0.1:0", "--state-dir",
         dir_->path() + "/state", "--port-file", dir_->path() + "/addr", "--tls-cert",
         f + "/agents/agent.pem", "--tls-key", f + "/agents/agent.key", "--tls-ca", f + "/ca.pem"},
        dir_->path() + "/agent.log");
    address_ = WaitForPortFile(dir_->path() + "/addr");
  }
  static void TearDownTestSuite() {
    if (agent_ > 0) {
      kill(agent_, SIGTERM);
      WaitFor(agent_, std::chrono::seconds(10));
    }
    delete dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_FALSE(address_.empty())
        << "the TLS agent did not start: " << ReadFile(dir_->path() + "/agent.log");
  }

  static std::string Fleet(const std::string& file) { return dir_->path() + "/fleet/" + file; }
  // --tls-* flags for `synq` with the given certificate, key and CA files.
  static std::vector<std::string> Flags(const std::string& cert, const std::string& key,
                                        const std::string& ca) {
    return {"--tls-cert", cert, "--tls-key", key, "--tls-ca", ca};
  }
  static ProcessResult Info(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {Binary("controller/synq"), "info", address_};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return RunProcess(argv, std::chrono::seconds(60));
  }

  static TempDir* dir_;
  static pid_t agent_;
  static std::string address_;
  static std::string setup_error_;
};
TempDir* Tls::dir_ = nullptr;
pid_t Tls::agent_ = -1;
std::string Tls::address_;
std::string Tls::setup_error_;

TEST_F(Tls, AControllerWithoutACertificateIsRefused) {
  ProcessResult p = Info({});
  EXPECT_EQ(p.exit_code, 3) << p.output;
  EXPECT_THAT(p.output, HasSubstr(absl::StrCat("agent ", address_, " requires mutual TLS")));
  EXPECT_THAT(p.output, Not(HasSubstr("hostname")));
}

TEST_F(Tls, AControllerCertificateFromAnotherCaIsRefusedByTheAgent) {
  const std::string other = dir_->path() + "/other/";
  ProcessResult p = Info(
      Flags(other + "controller.pem", other + "controller.key", dir_->path() + "/both-cas.pem"));
  EXPECT_EQ(p.exit_code, 3) << p.output;
  EXPECT_THAT(p.output, HasSubstr(absl::StrCat("agent ", address_, " refused our certificate")));
  EXPECT_THAT(p.output, HasSubstr(other + "controller.pem"));
  EXPECT_THAT(p.output, Not(HasSubstr("hostname")));
}

TEST_F(Tls, AnAgentCertificateFromAnotherCaIsNamedAsTheWrongCa) {
  const std::string other = dir_->path() + "/other/";
  ProcessResult p =
      Info(Flags(other + "controller.pem", other + "controller.key", other + "ca.pem"));
  EXPECT_EQ(p.exit_code, 3) << p.output;
  EXPECT_THAT(p.output, HasSubstr("wrong CA: the agent's certificate (/CN=agent)"));
  EXPECT_THAT(p.output, HasSubstr(absl::StrCat("--tls-ca ", other, "ca.pem")));
}

TEST_F(Tls, AWrongServerNameIsNamed) {
  std::vector<std::string> flags =
      Flags(Fleet("controller.pem"), Fleet("controller.key"), Fleet("ca.pem"));
  flags.push_back("--tls-server-name");
  flags.push_back("db.example");
  ProcessResult p = Info(flags);
  EXPECT_EQ(p.exit_code, 3) << p.output;
  EXPECT_THAT(p.output, HasSubstr("wrong name: the agent's certificate (/CN=agent) is for "
                                  "IP:127.0.0.1, not db.example"));
}

TEST_F(Tls, AnExpiredCertificateIsReportedAsExpiredNamingTheFile) {
  ProcessResult p = Info(Flags(Fleet("old.pem"), Fleet("old.key"), Fleet("ca.pem")));
  // Found when the files are loaded, before any agent is dialled: invalid input.
  EXPECT_EQ(p.exit_code, 2) << p.output;
  EXPECT_THAT(p.output, HasSubstr(absl::StrCat("--tls-cert ", Fleet("old.pem"),
                                               ": the certificate expired on")));
}

TEST_F(Tls, AKeyThatIsNotTheCertificatesIsNamed) {
  ProcessResult p = Info(Flags(Fleet("controller.pem"), Fleet("old.key"), Fleet("ca.pem")));
  EXPECT_EQ(p.exit_code, 2) << p.output;
  EXPECT_THAT(p.output, HasSubstr(absl::StrCat("--tls-key ", Fleet("old.key"),
                                               ": the key does not match the certificate")));
}

TEST_F(Tls, TheRightCertificateWorksForInfoAndRun) {
  ProcessResult p = Info(Flags(Fleet("controller.pem"), Fleet("controller.key"), Fleet("ca.pem")));
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_THAT(p.output, HasSubstr("security  mTLS"));
  EXPECT_THAT(p.output, HasSubstr("allow targets 127.0.0.0/8 ::1/128"));

  // The scenario's tls: block, with paths relative to the scenario file (written in fleet/).
  // 20 connections to a listener with backlog 64 that never accepts: the accept queue holds
  // backlog + 1 = 65 > 20, so the kernel completes every handshake.
  const std::string scenario = Fleet("tls.yaml");
  std::ofstream(scenario) << absl::StrCat(R"(name: tls
hosts:
  server:
    agent: ")",
                                          address_, R"("
    tls: { cert: controller.pem, key: controller.key, ca: ca.pem }
listeners: [ { name: l1, address: 127.0.0.1, backlog: 64 } ]
floods:
  - { name: f1, target: l1, connections: 20, concurrency: 20, connect_timeout: 1s, hold: 100ms }
)");
  SynqRun r = RunSynq(scenario, dir_->path() + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.result["runs"][0]["floods"]["f1"]["established"].get<int>(), 20) << r.output;
}

TEST_F(Tls, AScenarioTlsBlockWithoutItsKeyNamesTheField) {
  const std::string scenario = Fleet("partial.yaml");
  std::ofstream(scenario) << absl::StrCat(R"(name: partial
hosts:
  server: { agent: ")",
                                          address_,
                                          R"(", tls: { cert: controller.pem, ca: ca.pem } }
listeners: [ { name: l1 } ]
)");
  ProcessResult p = RunProcess({Binary("controller/synq"), "validate", scenario});
  EXPECT_EQ(p.exit_code, 2) << p.output;
  EXPECT_THAT(p.output, HasSubstr("hosts.server.tls.key: required in a tls: block"));
}

// An address other hosts can reach: 198.18.7.1 in a namespace the test creates.
class NonLoopbackAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: the agent listens in a test network namespace";
    // As synq's lab does: 198.18.0.0/15 never leaves this machine from the root namespace.
    if (RunProcess({"ip", "route", "show", "198.18.0.0/15"}).output.empty()) {
      RunProcess({"ip", "route", "add", "blackhole", "198.18.0.0/15"});
    }
    ns_ = std::make_unique<TestNetns>("tlsns");
    ns_->Exec({"ip", "addr", "add", "198.18.7.1/32", "dev", "lo"});
  }
  void TearDown() override {
    if (agent_ > 0) {
      kill(agent_, SIGTERM);
      WaitFor(agent_, std::chrono::seconds(10));
    }
    ns_.reset();
  }
  std::vector<std::string> AgentArgv(bool insecure) const {
    std::vector<std::string> argv = {Binary("agent/synq-agent"),
                                     "--netns",
                                     ns_->name(),
                                     "--listen",
                                     "198.18.7.1:0",
                                     "--state-dir",
                                     dir_.path() + "/state",
                                     "--port-file",
                                     dir_.path() + "/addr"};
    if (insecure) argv.push_back("--insecure");
    return argv;
  }
  TempDir dir_;
  std::unique_ptr<TestNetns> ns_;
  pid_t agent_ = -1;
};

TEST_F(NonLoopbackAgent, WithoutTlsItRefusesToStart) {
  ProcessResult p = RunProcess(AgentArgv(false), std::chrono::seconds(30));
  EXPECT_EQ(p.exit_code, 2) << p.output;
  EXPECT_THAT(p.output, HasSubstr("--listen 198.18.7.1:0: refusing to serve without TLS"));
  EXPECT_THAT(p.output, HasSubstr("--insecure"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/addr"));
}

TEST_F(NonLoopbackAgent, WithInsecureItWarnsAndInfoShowsItInsecure) {
  agent_ = Spawn(AgentArgv(true), dir_.path() + "/agent.log");
  const std::string address = WaitForPortFile(dir_.path() + "/addr");
  ASSERT_THAT(address, HasSubstr("198.18.7.1:")) << ReadFile(dir_.path() + "/agent.log");
  EXPECT_THAT(ReadFile(dir_.path() + "/agent.log"), HasSubstr("serving WITHOUT TLS"));
  const std::string out = ns_->Exec({Binary("controller/synq"), "info", address});
  EXPECT_THAT(out, HasSubstr("security  insecure (no TLS"));
  // The default list: loopback plus the namespace's attached networks (198.18.7.1/32 on lo).
  EXPECT_THAT(out, HasSubstr("allow targets 127.0.0.0/8 ::1/128 198.18.7.1/32"));
}

}  // namespace
}  // namespace synq::testing
