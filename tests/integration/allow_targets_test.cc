// Proves the agent's target allow-list and listener address check against a real synq-agent
// started with --allow-targets 127.0.0.2/32: a flood at 127.0.0.1 is refused with
// PERMISSION_DENIED naming the target and the list (over gRPC, and through `synq run` as a
// failed host), a flood at 127.0.0.2 inside the list runs, a listener on an address that is not
// the host's is refused naming the address, and `synq info` shows the list. All traffic stays on
// loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "controller/agent_client.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::synq::agent::v1;

class AllowTargets : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = dir_.path() + "/agent.sock";
    agent_ = Spawn({Binary("agent/synq-agent"), "--listen", "unix:" + socket_, "--state-dir",
                    dir_.path() + "/state", "--port-file", dir_.path() + "/addr", "--allow-targets",
                    "127.0.0.2/32"},
                   dir_.path() + "/agent.log");
    for (int i = 0; i < 100 && !std::filesystem::exists(dir_.path() + "/addr"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(std::filesystem::exists(dir_.path() + "/addr")) << "agent did not start";
  }
  void TearDown() override {
    if (agent_ > 0) {
      kill(agent_, SIGTERM);
      WaitFor(agent_, std::chrono::seconds(10));
    }
  }
  std::string Scenario(const std::string& listen_address) const {
    // 20 connections into backlog 64 (never accepted): the accept queue holds 65, so the kernel
    // completes all 20 handshakes.
    return dir_.Write("s.yaml", absl::StrCat(R"(name: allow
hosts: { server: { agent: "unix:)",
                                             socket_, R"(" } }
listeners: [ { name: l1, address: )",
                                             listen_address, R"(, backlog: 64 } ]
floods:
  - { name: f1, target: l1, connections: 20, concurrency: 20, connect_timeout: 1s, hold: 100ms }
)"));
  }
  TempDir dir_;
  std::string socket_;
  pid_t agent_ = -1;
};

TEST_F(AllowTargets, AFloodOutsideTheListIsPermissionDeniedNamingTargetAndList) {
  auto client = controller::ConnectAgent("unix:" + socket_, std::chrono::seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();
  v1::BeginRunRequest begin;
  begin.set_run_id("allow-1");
  begin.mutable_lease()->set_seconds(30);
  begin.mutable_sample_interval()->set_nanos(100'000'000);
  ASSERT_TRUE((*client)->BeginRun(begin).ok());

  v1::StartListenerRequest listen;
  listen.set_run_id("allow-1");
  listen.mutable_listener()->set_name("l1");
  listen.mutable_listener()->set_address("127.0.0.1");
  listen.mutable_listener()->set_backlog(8);
  listen.mutable_listener()->set_accept(v1::ACCEPT_MODE_NEVER);
  auto listener = (*client)->StartListener(listen);
  ASSERT_TRUE(listener.ok()) << listener.status();

  v1::StartFloodsRequest floods;
  floods.set_run_id("allow-1");
  auto* f = floods.add_floods();
  f->set_name("f1");
  f->set_target(absl::StrCat("127.0.0.1:", listener->listener().port()));
  f->set_connections(5);
  f->set_concurrency(5);
  f->mutable_connect_timeout()->set_seconds(1);
  absl::Status refused = (*client)->StartFloods(floods);
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("floods.f1.target: 127.0.0.1 is outside"));
  EXPECT_THAT(refused.message(), HasSubstr("--allow-targets 127.0.0.2/32"));

  // A listener must bind one of the host's own addresses; 198.51.100.7 (TEST-NET-2) is none.
  listen.mutable_listener()->set_name("l2");
  listen.mutable_listener()->set_address("198.51.100.7");
  auto foreign = (*client)->StartListener(listen);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kInvalidArgument) << foreign.status();
  EXPECT_THAT(foreign.status().message(),
              HasSubstr("listeners.l2.address: 198.51.100.7 is not an address of this host"));
  EXPECT_TRUE((*client)->EndRun("allow-1").ok());
}

TEST_F(AllowTargets, ThroughSynqRunOutsideFailsTheHostAndInsideRuns) {
  SynqRun outside = RunSynq(Scenario("127.0.0.1"), dir_.path() + "/out1");
  EXPECT_EQ(outside.exit_code, 3) << outside.output;
  EXPECT_THAT(outside.output, HasSubstr("127.0.0.1 is outside the targets this agent accepts "
                                        "(--allow-targets 127.0.0.2/32)"));

  SynqRun inside = RunSynq(Scenario("127.0.0.2"), dir_.path() + "/out2");
  ASSERT_EQ(inside.exit_code, 0) << inside.output;
  EXPECT_EQ(inside.result["runs"][0]["floods"]["f1"]["established"].get<int>(), 20)
      << inside.output;

  ProcessResult info = RunProcess({Binary("controller/synq"), "info", "unix:" + socket_});
  EXPECT_EQ(info.exit_code, 0) << info.output;
  EXPECT_THAT(info.output, HasSubstr("allow targets 127.0.0.2/32\n"));
  EXPECT_THAT(info.output, HasSubstr("security  local (no TLS"));
}

}  // namespace
}  // namespace synq::testing
