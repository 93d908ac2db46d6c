// Proves that a flood that measured nothing, because every attempt failed with an error of the
// flooding host's own (here ENETUNREACH from the host's own firewall), fails its host with exit 3
// naming the flood and the error; and that a scenario whose expect: line asks about that error
// takes it as the outcome under test (exit 0).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class LocalErrorFlood : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: the agent runs in a test network namespace";
    ns_ = std::make_unique<TestNetns>("noroute");
    ns_->Exec({"ip", "link", "set", "lo", "up"});
    // 198.18.9.0/24 is attached to v0 (so the agent finds a route and a source when it plans
    // the flood), but the namespace's OUTPUT chain rejects SYNs to 198.18.9.2 with ICMP net
    // unreachable: the kernel hands that error to each connecting socket in SYN-SENT
    // (tcp_v4_err), so every connect() fails at once with ENETUNREACH, as with a route that
    // vanished. (With no route at all the agent refuses the flood when planning it.) When the
    // ICMP is handled while connect() still holds the socket's lock, tcp_v4_err only records a
    // soft error and the SYN is retransmitted after the 1 s initial RTO; that retransmission
    // (sent from the timer, the lock free) gets the hard ENETUNREACH. connect_timeout 3 s lets
    // that happen, so every attempt ends in ENETUNREACH whichever way the race goes.
    ns_->Exec({"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"});
    ns_->Exec({"ip", "addr", "add", "198.18.9.1/24", "dev", "v0"});
    ns_->Exec({"ip", "link", "set", "v0", "up"});
    ns_->Exec({"ip", "link", "set", "v1", "up"});
    ns_->Exec({"iptables", "-w", "-A", "OUTPUT", "-d", "198.18.9.2", "-p", "tcp", "-j", "REJECT",
               "--reject-with", "icmp-net-unreachable"});
    socket_ = dir_.path() + "/agent.sock";
    agent_ =
        Spawn({Binary("agent/synq-agent"), "--netns", ns_->name(), "--listen", "unix:" + socket_,
               "--state-dir", dir_.path() + "/state", "--port-file", dir_.path() + "/addr"},
              dir_.path() + "/agent.log");
    const auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (!std::filesystem::exists(dir_.path() + "/addr") &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(50));
    }
    ASSERT_TRUE(std::filesystem::exists(dir_.path() + "/addr")) << "agent did not start";
  }
  void TearDown() override {
    if (agent_ > 0) {
      kill(agent_, SIGKILL);
      WaitFor(agent_, seconds(5));
    }
    ns_.reset();
  }
  std::string Scenario(const std::string& expect) const {
    return dir_.Write("s.yaml", absl::StrCat(R"(name: noroute
hosts:
  client: { agent: "unix:)",
                                             socket_, R"(" }
floods:
  - { name: f1, target: "198.18.9.2:80", connections: 5, concurrency: 5, connect_timeout: 3s }
)",
                                             expect));
  }

  TempDir dir_;
  std::unique_ptr<TestNetns> ns_;
  std::string socket_;
  pid_t agent_ = -1;
};

TEST_F(LocalErrorFlood, EveryAttemptUnreachableFailsTheHostNamingFloodAndErrno) {
  SynqRun r = RunSynq(Scenario(""), dir_.path());
  ASSERT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("hosts.client: floods.f1: every attempt failed with a local error "
                          "(ENETUNREACH 5 of 5 attempted"),
            std::string::npos)
      << r.output;
  // The result keeps the flood's figures and the failure.
  ASSERT_FALSE(r.result.is_null()) << r.output;
  const auto& run = r.result["runs"][0];
  EXPECT_EQ(run["floods"]["f1"]["errors"]["ENETUNREACH"].get<int>(), 5) << run.dump();
  ASSERT_TRUE(run.contains("errors")) << run.dump();
  EXPECT_NE(run["errors"][0].get<std::string>().find("floods.f1"), std::string::npos);
}

TEST_F(LocalErrorFlood, AnExpectationOnTheErrorsMakesItTheOutcomeUnderTest) {
  SynqRun r = RunSynq(Scenario("expect:\n  - floods.f1.errors.ENETUNREACH == 5\n"), dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("every attempt failed"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace synq::testing
