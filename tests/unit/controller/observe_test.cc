// Proves the controller side of `observe:` (listeners synq did not start): the section loads and
// every bad entry is an error naming its field; a flood may target an observed listener by name;
// the result lists it as observed with its owner, joins its sockets into the fates exactly as
// for synq's own listeners (a server-closed connection is accepted), and a flood at a server
// nobody observes says not_observed, never unknown_to_server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controller/result/run_builder.h"
#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

namespace av1 = ::synq::agent::v1;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

std::vector<std::string> Errors(const LoadResult& result) {
  std::vector<std::string> out;
  for (const ScenarioError& e : result.errors) out.push_back(e.ToString());
  return out;
}

constexpr char kHosts[] = R"(name: t
hosts: { srv: {}, cli: {} }
)";

TEST(ObserveScenario, LoadsEntriesAndFloodsMayTargetThemByName) {
  LoadResult r = LoadScenario(std::string(kHosts) + R"(
observe:
  - { name: web, host: srv, port: 8080 }
  - { name: api, host: srv, port: 9090, address: "198.18.0.2" }
floods:
  - { name: f1, host: cli, target: web }
)");
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_EQ(r.scenario.observes.size(), 2u);
  EXPECT_EQ(r.scenario.observes[0].name, "web");
  EXPECT_EQ(r.scenario.observes[0].host, "srv");
  EXPECT_EQ(r.scenario.observes[0].port, 8080);
  EXPECT_EQ(r.scenario.observes[0].address, "");
  EXPECT_EQ(r.scenario.observes[1].address, "198.18.0.2");
  EXPECT_EQ(r.scenario.FindObserved("api"), &r.scenario.observes[1]);
}

TEST(ObserveScenario, EveryBadEntryNamesItsField) {
  LoadResult r = LoadScenario(std::string(kHosts) + R"(
listeners:
  - { name: l1, host: srv, port: 7000 }
observe:
  - { name: web, host: srv }
  - { name: api, host: nowhere, port: 70000 }
  - { name: l1, host: srv, port: 8081 }
  - { name: web2, host: srv, port: 8080, address: "not-an-ip", backlog: 3 }
  - { name: own, host: srv, port: 7000 }
floods:
  - { name: f1, host: cli, target: nothing }
)");
  EXPECT_THAT(Errors(r), UnorderedElementsAre(
                             HasSubstr("observe.web.port: required"),
                             HasSubstr("observe.api.host: no host named 'nowhere'"),
                             HasSubstr("observe.api.port: "), HasSubstr("observe.web2.address: "),
                             HasSubstr("observe.web2.backlog: unknown field"),
                             HasSubstr("observe.l1.name: 'l1' is already the name of listeners.l1"),
                             HasSubstr("observe.own.port: port 7000 on host 'srv' is synq's own "
                                       "listener listeners.l1"),
                             HasSubstr("floods.f1.target: no listener named 'nothing'")));
}

TEST(ObserveScenario, OnePortObservedTwiceIsAnError) {
  LoadResult r = LoadScenario(std::string(kHosts) + R"(
observe:
  - { name: a, host: srv, port: 8080 }
  - { name: b, host: srv, port: 8080 }
)");
  EXPECT_THAT(Errors(r),
              UnorderedElementsAre(HasSubstr(
                  "observe.b.port: host 'srv' port 8080 is already observed as observe.a")));
}

// The run as agents would report it: nginx observed on srv as `web`, f1 aimed at it, f2 at an
// address nobody observes.
struct ObservedRun {
  RunPlan plan;
  result::RunInputs in;

  ObservedRun() {
    plan.scenario = LoadScenario(std::string(kHosts) + R"(
observe: [ { name: web, host: srv, port: 8080 } ]
floods:
  - { name: f1, host: cli, target: web }
  - { name: f2, host: cli, target: "198.18.0.9:80" }
)")
                        .scenario;
    in.plan = &plan;
    in.run_id = "r";
    result::HostReplies srv;
    srv.name = "srv";
    av1::CollectResultsResponse sc;
    auto* web = sc.add_listeners();
    web->set_name("web");
    web->set_ip("198.18.0.2");
    web->set_port(8080);
    web->set_address("198.18.0.2:8080");
    web->set_backlog_effective(8);
    web->set_accepted(1);
    web->set_observed(true);
    web->set_owner("nginx (pid 7)");
    // One connection nginx answered and closed, one still in its accept queue.
    auto* closed = sc.add_server_sockets();
    closed->set_local("198.18.0.2:8080");
    closed->set_remote("198.18.0.3:50001");
    closed->set_state(av1::TCP_STATE_FIN_WAIT2);
    closed->set_accepted(true);
    closed->set_listener("web");
    auto* queued = sc.add_server_sockets();
    queued->set_local("198.18.0.2:8080");
    queued->set_remote("198.18.0.3:50002");
    queued->set_state(av1::TCP_STATE_ESTABLISHED);
    queued->set_listener("web");
    srv.collected = sc;
    result::HostReplies cli;
    cli.name = "cli";
    av1::CollectResultsResponse cc;
    auto* f1 = cc.add_floods();
    f1->set_name("f1");
    AddRecord(f1, "198.18.0.3:50001", "198.18.0.2:8080", av1::OUTCOME_ESTABLISHED, "");
    AddRecord(f1, "198.18.0.3:50002", "198.18.0.2:8080", av1::OUTCOME_ESTABLISHED, "");
    AddRecord(f1, "198.18.0.3:50003", "198.18.0.2:8080", av1::OUTCOME_ESTABLISHED, "");
    AddRecord(f1, "198.18.0.3:50004", "198.18.0.2:8080", av1::OUTCOME_ERROR, "EOF");
    auto* f2 = cc.add_floods();
    f2->set_name("f2");
    AddRecord(f2, "198.18.0.3:50005", "198.18.0.9:80", av1::OUTCOME_ESTABLISHED, "");
    AddRecord(f2, "198.18.0.3:50006", "198.18.0.9:80", av1::OUTCOME_ERROR, "EOF");
    cli.collected = cc;
    in.hosts = {srv, cli};
    in.targets["f1"] = {"198.18.0.2", 8080, "web"};
    in.targets["f2"] = {"198.18.0.9", 80, ""};
  }

  static void AddRecord(av1::FloodResult* f, const std::string& local, const std::string& remote,
                        av1::Outcome outcome, const std::string& error) {
    auto* c = f->add_connections();
    c->set_local(local);
    c->set_remote(remote);
    c->set_outcome(outcome);
    c->set_error_name(error);
  }
};

TEST(ObserveResult, ObservedListenerIsListedWithOwnerAndJoinsFates) {
  ObservedRun r;
  const synq::result::v1::Run run = result::BuildRun(r.in);
  const auto& web = run.listeners().at("web");
  EXPECT_TRUE(web.observed());
  EXPECT_EQ(web.owner(), "nginx (pid 7)");
  EXPECT_EQ(web.host(), "srv");
  EXPECT_EQ(web.backlog_effective(), 8);
  EXPECT_THAT(run.not_observed(), Contains(HasSubstr("listeners.web.backlog: ")));

  const auto& f1 = run.floods().at("f1");
  EXPECT_TRUE(f1.server_observed());
  EXPECT_EQ(f1.listener(), "web");
  // 50001: joined with a FIN_WAIT2 socket nginx accepted; 50004: read EOF, only a server
  // application closes that way; 50002: in the accept queue; 50003: no server state at all.
  EXPECT_EQ(f1.fates().accepted(), 2u);
  EXPECT_EQ(f1.fates().queued(), 1u);
  EXPECT_EQ(f1.fates().syn_recv(), 0u);
  EXPECT_EQ(f1.fates().unknown_to_server(), 1u);
  EXPECT_EQ(f1.fates().error(), 0u);
}

TEST(ObserveResult, AFloodNobodyObservesSaysNotObservedNeverUnknownToServer) {
  ObservedRun r;
  const synq::result::v1::Run run = result::BuildRun(r.in);
  const auto& f2 = run.floods().at("f2");
  EXPECT_FALSE(f2.server_observed());
  EXPECT_FALSE(f2.fates().has_accepted());
  EXPECT_FALSE(f2.fates().has_queued());
  EXPECT_FALSE(f2.fates().has_syn_recv());
  EXPECT_FALSE(f2.fates().has_unknown_to_server());
  EXPECT_EQ(f2.fates().established_unjoined(), 1u);
  EXPECT_EQ(f2.fates().error(), 1u) << "EOF from an unobserved server stays an error";
  EXPECT_THAT(run.not_observed(), Contains(HasSubstr("floods.f2.fates: ")));

  // The observed listener's host returned no snapshot: f1 is not observed either.
  r.in.hosts[0].collected.reset();
  r.in.hosts[0].error = "agent gone";
  const synq::result::v1::Run lost = result::BuildRun(r.in);
  EXPECT_FALSE(lost.floods().at("f1").server_observed());
  EXPECT_FALSE(lost.floods().at("f1").fates().has_unknown_to_server());
}

}  // namespace
}  // namespace synq::controller
