// Proves host groups without a network: `discover:`, `agents:`, `count:` and `select:` load, and
// each bad one is named by its field with the reason; discover URIs parse (system resolver or a
// given DNS server); endpoints sort by address; a group expands into GROUP-1..N in sorted endpoint
// order with floods, listeners and settings per member (a single-host flood to a group listener
// becomes one flood per target member); too few answering agents refuse with the missing ones
// named; select: keeps the agents whose labels match and names the others with their labels; merged
// rows add the members' counts and merge their histograms exactly (the merged histogram equals one
// that recorded every member's values), and listener rows add accepts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/histogram.h"
#include "controller/fleet/discovery.h"
#include "controller/fleet/expand.h"
#include "controller/fleet/group_merge.h"
#include "controller/fleet/members.h"
#include "controller/scenario/discover_target.h"
#include "controller/scenario_loader.h"

namespace synq::controller {
namespace {

namespace rv1 = ::synq::result::v1;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Errors(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.ToString());
  return out;
}

TEST(HostGroupLoader, LoadsADiscoveredGroupAndAStaticList) {
  LoadResult r = LoadScenario(R"(name: t
hosts:
  server: { agent: "198.18.0.7:7700" }
  clients: { discover: "dns://127.0.0.1:5353/synq-agent.synq.svc:7700", count: 8,
             tls: { cert: c.pem, key: c.key, ca: ca.pem } }
  pair: { agents: ["198.18.0.1:7700", "198.18.0.2:7700"] }
  some: { agents: ["198.18.0.3:7700", "198.18.0.4:7700"], count: any }
listeners: [ { name: l1, host: server } ]
floods: [ { name: f1, host: clients, target: l1 } ]
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(Errors(r));
  const HostSpec& clients = r.scenario.hosts[1];
  ASSERT_TRUE(clients.is_group());
  EXPECT_FALSE(clients.embedded());
  ASSERT_TRUE(clients.group->discover.has_value());
  EXPECT_EQ(clients.group->discover->dns_server, "127.0.0.1:5353");
  EXPECT_EQ(clients.group->discover->name, "synq-agent.synq.svc");
  EXPECT_EQ(clients.group->discover->port, 7700);
  EXPECT_EQ(clients.group->count, 8);
  EXPECT_EQ(clients.tls.ca, "ca.pem");
  // A static list without count needs every listed agent.
  EXPECT_EQ(r.scenario.hosts[2].group->count, 2);
  EXPECT_TRUE(r.scenario.hosts[3].group->count_any);
}

TEST(HostGroupLoader, EachProblemNamesItsField) {
  LoadResult r = LoadScenario(R"(name: t
hosts:
  a: { discover: "dns:///agents:7700" }
  b: { discover: "http://agents:7700", count: 2 }
  c: { discover: "dns://ns.example/agents:7700", count: 2 }
  d: { agents: ["198.18.0.1:7700"], count: 3 }
  e: { agents: ["198.18.0.1:7701", "nope"], discover: "dns:///x:1", count: 0 }
  f: { agent: "198.18.0.9:7700", agents: ["198.18.0.9:7701"] }
  g: { count: 2 }
)");
  const std::vector<std::string> errors = Errors(r);
  EXPECT_THAT(errors, Contains("hosts.a.count: required with discover: how many agents must "
                               "answer (a number, or any)"));
  EXPECT_THAT(errors,
              Contains(HasSubstr("hosts.b.discover: expected dns:///NAME:PORT or "
                                 "dns://SERVER[:PORT]/NAME:PORT, got 'http://agents:7700'")));
  EXPECT_THAT(errors, Contains(HasSubstr("hosts.c.discover: DNS server 'ns.example' must be an IP "
                                         "address")));
  EXPECT_THAT(errors, Contains("hosts.d.count: 3 agents but agents: lists 1"));
  EXPECT_THAT(errors, Contains(HasSubstr("hosts.e.agents[1]: expected HOST:PORT or unix:/path")));
  EXPECT_THAT(errors, Contains("hosts.e.agents: a group has discover: or agents:, not both"));
  EXPECT_THAT(errors, Contains(HasSubstr("hosts.e.count: ")));
  EXPECT_THAT(errors,
              Contains(HasSubstr("hosts.f.agent: a host is one agent (agent:) or a group")));
  EXPECT_THAT(errors,
              Contains(HasSubstr("hosts.g.discover: count: and select: need the group's agents")));
}

TEST(HostGroupLoader, AFloodFromAGroupToAGroupListenerIsRefused) {
  LoadResult r = LoadScenario(R"(name: t
hosts:
  servers: { agents: ["198.18.0.1:7700", "198.18.0.2:7700"] }
  clients: { agents: ["198.18.0.3:7700", "198.18.0.4:7700"] }
listeners: [ { name: l1, host: servers } ]
floods: [ { name: f1, host: clients, target: l1 } ]
)");
  EXPECT_THAT(Errors(r), Contains(HasSubstr("floods.f1.target: a flood on a group "
                                            "(hosts.clients) cannot target a listener on a group "
                                            "(hosts.servers)")));
}

TEST(DiscoverTarget, ParsesSystemResolverAndGivenServer) {
  auto system = scenario::ParseDiscoverTarget("dns:///synq-agent.synq.svc.cluster.local:7700");
  ASSERT_TRUE(system.ok()) << system.status();
  EXPECT_EQ(system->dns_server, "");
  EXPECT_EQ(system->name, "synq-agent.synq.svc.cluster.local");
  auto v6 = scenario::ParseDiscoverTarget("dns://[::1]:5353/a:1");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->dns_server, "[::1]:5353");
  auto bare = scenario::ParseDiscoverTarget("dns://198.18.96.10/a:1");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->dns_server, "198.18.96.10");
  EXPECT_THAT(std::string(scenario::ParseDiscoverTarget("dns:///a:0").status().message()),
              HasSubstr("agent port must be 1 to 65535"));
  EXPECT_THAT(std::string(scenario::ParseDiscoverTarget("dns:///a").status().message()),
              HasSubstr("needs NAME:PORT"));
}

TEST(SortEndpoints, OrdersByAddressNotText) {
  std::vector<std::string> e = {"[::1]:7700",       "198.18.64.10:7700", "198.18.64.9:7700",
                                "198.18.64.9:7700", "unix:/a",           "198.18.0.1:7701",
                                "198.18.0.1:7700"};
  fleet::SortEndpoints(e);
  EXPECT_THAT(e, ElementsAre("198.18.0.1:7700", "198.18.0.1:7701", "198.18.64.9:7700",
                             "198.18.64.10:7700", "[::1]:7700", "unix:/a"));
}

Scenario Load(const std::string& yaml) {
  LoadResult r = LoadScenario(yaml);
  EXPECT_TRUE(r.ok()) << ::testing::PrintToString(Errors(r));
  return r.scenario;
}

TEST(ExpandGroups, MembersInEndpointOrderWithPerMemberFloodsAndSettings) {
  const Scenario s = Load(R"(name: t
hosts:
  server: { agent: "198.18.0.7:7700" }
  clients: { discover: "dns:///agents:7700", count: 2 }
settings:
  clients: { net.ipv4.tcp_syn_retries: 2 }
listeners: [ { name: l1, host: server } ]
floods: [ { name: f1, host: clients, target: l1, connections: 5 } ]
)");
  auto e = fleet::ExpandGroups(s, {{"clients", {"198.18.0.10:7700", "198.18.0.9:7700"}}});
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->scenario.hosts.size(), 3u);
  EXPECT_EQ(e->scenario.hosts[1].name, "clients-1");
  EXPECT_EQ(e->scenario.hosts[1].agent, "198.18.0.9:7700");
  EXPECT_EQ(e->scenario.hosts[2].name, "clients-2");
  EXPECT_EQ(e->scenario.hosts[2].agent, "198.18.0.10:7700");
  EXPECT_FALSE(e->scenario.hosts[2].is_group());
  ASSERT_EQ(e->scenario.floods.size(), 2u);
  EXPECT_EQ(e->scenario.floods[0].name, "f1@clients-1");
  EXPECT_EQ(e->scenario.floods[0].host, "clients-1");
  EXPECT_EQ(e->scenario.floods[0].target, "l1");
  EXPECT_EQ(e->scenario.floods[1].connections, 5);
  EXPECT_EQ(e->scenario.settings.at("clients-2").at("net.ipv4.tcp_syn_retries"), 2);
  EXPECT_FALSE(e->scenario.settings.contains("clients"));
  EXPECT_THAT(e->plan.floods.at("f1"), ElementsAre("f1@clients-1", "f1@clients-2"));
  EXPECT_EQ(e->plan.hosts.at("clients-2").endpoint, "198.18.0.10:7700");
}

TEST(ExpandGroups, ASingleHostFloodToAGroupListenerFloodsEachMember) {
  const Scenario s = Load(R"(name: t
hosts:
  client: { agent: "198.18.0.7:7700" }
  servers: { agents: ["198.18.0.1:7700", "198.18.0.2:7700", "198.18.0.3:7700"] }
listeners: [ { name: l1, host: servers, backlog: 9 } ]
floods: [ { name: f1, host: client, target: l1 } ]
)");
  auto e = fleet::ExpandGroups(
      s, {{"servers", {"198.18.0.1:7700", "198.18.0.2:7700", "198.18.0.3:7700"}}});
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->scenario.listeners.size(), 3u);
  EXPECT_EQ(e->scenario.listeners[2].name, "l1@servers-3");
  EXPECT_EQ(e->scenario.listeners[2].backlog, 9);
  ASSERT_EQ(e->scenario.floods.size(), 3u);
  EXPECT_EQ(e->scenario.floods[1].name, "f1@servers-2");
  EXPECT_EQ(e->scenario.floods[1].host, "client");
  EXPECT_EQ(e->scenario.floods[1].target, "l1@servers-2");
  EXPECT_EQ(e->plan.row_group.at("floods.f1"), "servers");
  EXPECT_THAT(e->plan.listeners.at("l1"),
              ElementsAre("l1@servers-1", "l1@servers-2", "l1@servers-3"));
}

HostSpec Group(bool discover, int64_t count, bool any) {
  HostSpec h;
  h.name = "clients";
  h.group.emplace();
  if (discover)
    h.group->discover = DiscoverTarget{"dns://127.0.0.1/a:7700", "127.0.0.1", "a", 7700};
  h.group->count = count;
  h.group->count_any = any;
  return h;
}

TEST(ChooseMembers, TooFewAnsweringNamesWhoDidNotAnswer) {
  const std::vector<std::string> found = {"198.18.0.1:7700", "198.18.0.2:7700", "198.18.0.3:7700"};
  std::vector<fleet::MemberProbe> probes = {
      {"198.18.0.1:7700", v1::HostInfo()},
      {"198.18.0.2:7700", absl::UnavailableError("agent 198.18.0.2:7700 is unreachable")},
      {"198.18.0.3:7700", v1::HostInfo()}};
  auto dns = fleet::ChooseMembers(Group(true, 3, false), found, probes);
  ASSERT_FALSE(dns.ok());
  EXPECT_EQ(
      dns.status().message(),
      "hosts.clients.discover: found 3 agent(s) at dns://127.0.0.1/a:7700 (198.18.0.1:7700, "
      "198.18.0.2:7700, 198.18.0.3:7700), 2 answered; count 3; did not answer: 198.18.0.2:7700 "
      "(agent 198.18.0.2:7700 is unreachable)");
  auto listed = fleet::ChooseMembers(Group(false, 3, false), found, probes);
  EXPECT_THAT(std::string(listed.status().message()),
              HasSubstr("hosts.clients.agents: 2 of 3 listed agent(s) answered; count 3"));
  auto any = fleet::ChooseMembers(Group(true, 0, true), found, probes);
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_THAT(*any, ElementsAre("198.18.0.1:7700", "198.18.0.3:7700"));
  auto two = fleet::ChooseMembers(Group(true, 2, false), found, probes);
  EXPECT_TRUE(two.ok()) << two.status();
}

TEST(ChooseMembers, SelectKeepsTheAgentsWhoseLabelsMatch) {
  // Four agents answer; two carry zone=a (one with a second label), one zone=b, one none.
  const std::vector<std::string> found = {"198.18.0.4:7700", "198.18.0.3:7700", "198.18.0.2:7700",
                                          "198.18.0.1:7700"};
  auto labelled = [](std::map<std::string, std::string> labels) {
    v1::HostInfo info;
    info.mutable_labels()->insert(labels.begin(), labels.end());
    return info;
  };
  std::vector<fleet::MemberProbe> probes = {
      {"198.18.0.4:7700", labelled({{"zone", "a"}, {"node", "w4"}})},
      {"198.18.0.3:7700", labelled({{"zone", "b"}})},
      {"198.18.0.2:7700", labelled({{"zone", "a"}})},
      {"198.18.0.1:7700", labelled({})}};
  HostSpec zone_a = Group(true, 2, false);
  zone_a.group->select = {{"zone", "a"}};
  auto two = fleet::ChooseMembers(zone_a, found, probes);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_THAT(*two, ElementsAre("198.18.0.2:7700", "198.18.0.4:7700"));  // sorted
  zone_a.group->count = 3;
  auto three = fleet::ChooseMembers(zone_a, found, probes);
  ASSERT_FALSE(three.ok());
  EXPECT_THAT(std::string(three.status().message()),
              HasSubstr("4 answered, 2 match select {zone=a}; count 3; not selected: "
                        "198.18.0.3:7700 (zone=b); 198.18.0.1:7700 (no labels)"));
  HostSpec both = Group(true, 0, true);
  both.group->select = {{"zone", "a"}, {"node", "w4"}};
  auto one = fleet::ChooseMembers(both, found, probes);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_THAT(*one, ElementsAre("198.18.0.4:7700"));
}

TEST(GroupEndpoints, AnAgentThatIsAHostOfItsOwnIsNotAlsoAMember) {
  // A DaemonSet's Service lists every node's agent, the server node's too: the host named on
  // its own keeps it, and the group runs on the others.
  Scenario s;
  s.hosts.push_back({"server", "198.18.0.7:7700"});
  s.hosts.push_back(Group(true, 2, false));
  std::vector<std::string> excluded;
  const std::vector<std::string> kept = fleet::WithoutFixedAgents(
      s, s.hosts[1], {"198.18.0.5:7700", "198.18.0.7:7700", "198.18.0.9:7700"}, &excluded);
  EXPECT_THAT(kept, ElementsAre("198.18.0.5:7700", "198.18.0.9:7700"));
  EXPECT_THAT(excluded, ElementsAre("198.18.0.7:7700 (hosts.server)"));
  // Another port on the same address is another agent.
  EXPECT_THAT(fleet::WithoutFixedAgents(s, s.hosts[1], {"198.18.0.7:7701"}),
              ElementsAre("198.18.0.7:7701"));
}

TEST(HostGroupLoader, SelectTakesLabelsAndRefusesBadOnesByName) {
  LoadResult ok = LoadScenario(R"(name: t
hosts:
  clients: { discover: "dns:///a:7700", count: any,
             select: { topology.kubernetes.io/zone: eu-west-1a, pool: "load" } }
)");
  ASSERT_TRUE(ok.ok()) << ::testing::PrintToString(Errors(ok));
  EXPECT_EQ(ok.scenario.hosts[0].group->select,
            (common::Labels{{"topology.kubernetes.io/zone", "eu-west-1a"}, {"pool", "load"}}));
  LoadResult bad = LoadScenario(R"(name: t
hosts:
  a: { discover: "dns:///a:7700", count: 1, select: zone }
  b: { discover: "dns:///a:7700", count: 1, select: { -zone: x } }
  c: { discover: "dns:///a:7700", count: 1, select: { zone: "a b" } }
  d: { discover: "dns:///a:7700", count: 1, select: { zone: [a] } }
)");
  const std::vector<std::string> errors = Errors(bad);
  EXPECT_THAT(errors, Contains(HasSubstr("hosts.a.select: expected a map of label -> value")));
  EXPECT_THAT(errors, Contains(HasSubstr("hosts.b.select.-zone: label key '-zone'")));
  EXPECT_THAT(errors, Contains(HasSubstr("hosts.c.select.zone: label value 'a b'")));
  EXPECT_THAT(errors, Contains(HasSubstr("hosts.d.select.zone: expected a label value")));
}

// A member row as the run builder writes it, from latencies recorded in a real histogram.
rv1::Flood MemberRow(const std::vector<uint64_t>& latencies_us, uint32_t attempted,
                     common::Histogram& all) {
  common::Histogram h;
  for (uint64_t us : latencies_us) {
    h.Record(us);
    all.Record(us);
  }
  rv1::Flood f;
  f.set_attempted(attempted);
  f.set_established(static_cast<uint32_t>(latencies_us.size()));
  f.set_timed_out(attempted - static_cast<uint32_t>(latencies_us.size()));
  (*f.mutable_errors())["EADDRNOTAVAIL"] = 1;
  f.mutable_fates()->set_queued(2);
  f.mutable_fates()->set_accepted(0);
  f.mutable_fates()->set_syn_recv(0);
  f.mutable_fates()->set_unknown_to_server(0);
  f.mutable_fates()->set_timed_out(f.timed_out());
  f.mutable_connect_latency_histogram()->set_sub_bucket_bits(h.sub_bucket_bits());
  for (const auto& [b, n] : h.buckets()) {
    (*f.mutable_connect_latency_histogram()->mutable_buckets())[b] = static_cast<uint32_t>(n);
  }
  f.mutable_connect_latency_ms()->set_max(static_cast<double>(h.max()) / 1000.0);
  return f;
}

TEST(MergeGroupRows, CountsAddAndHistogramsMergeExactly) {
  common::Histogram all;
  rv1::Run run;
  (*run.mutable_floods())["f1@c-1"] = MemberRow({120, 250, 1000, 3000000}, 6, all);
  (*run.mutable_floods())["f1@c-2"] = MemberRow({90, 110, 40000}, 3, all);
  (*run.mutable_hosts())["c-2"];
  fleet::GroupPlan plan;
  plan.hosts["c-1"] = {"c", "198.18.0.1:7700"};
  plan.hosts["c-2"] = {"c", "198.18.0.2:7700"};
  plan.floods["f1"] = {"f1@c-1", "f1@c-2"};
  plan.row_group["floods.f1"] = "c";
  ASSERT_TRUE(fleet::MergeGroupRows(plan, &run).ok());
  const rv1::Flood& m = run.floods().at("f1");
  EXPECT_EQ(m.group(), "c");
  EXPECT_THAT(m.members(), ElementsAre("f1@c-1", "f1@c-2"));
  EXPECT_EQ(m.attempted(), 9u);
  EXPECT_EQ(m.established(), 7u);
  EXPECT_EQ(m.timed_out(), 2u);
  EXPECT_EQ(m.errors().at("EADDRNOTAVAIL"), 2u);
  EXPECT_EQ(m.fates().queued(), 4u);
  EXPECT_EQ(run.floods().at("f1@c-2").group(), "c");
  EXPECT_EQ(run.hosts().at("c-2").endpoint(), "198.18.0.2:7700");
  // Exact: the merged buckets are those of one histogram that recorded all seven values.
  ASSERT_EQ(m.connect_latency_histogram().buckets_size(), static_cast<int>(all.buckets().size()));
  for (const auto& [b, n] : all.buckets()) {
    EXPECT_EQ(m.connect_latency_histogram().buckets().at(b), n) << "bucket " << b;
  }
  EXPECT_EQ(m.connect_latency_ms().count(), 7u);
  EXPECT_DOUBLE_EQ(m.connect_latency_ms().p50(), static_cast<double>(all.Quantile(0.5)) / 1000.0);
  EXPECT_DOUBLE_EQ(m.connect_latency_ms().p99(), static_cast<double>(all.Quantile(0.99)) / 1000.0);
  EXPECT_DOUBLE_EQ(m.connect_latency_ms().max(), 3000.0);
}

TEST(MergeGroupRows, JoinedFatesOnlyWhenEveryMemberWasObserved) {
  common::Histogram all;
  rv1::Run run;
  (*run.mutable_floods())["f1@c-1"] = MemberRow({100}, 1, all);
  rv1::Flood unjoined = MemberRow({100}, 1, all);
  unjoined.mutable_fates()->clear_queued();
  unjoined.mutable_fates()->set_established_unjoined(1);
  (*run.mutable_floods())["f1@c-2"] = unjoined;
  fleet::GroupPlan plan;
  plan.hosts["c-1"] = {"c", "a:1"};
  plan.floods["f1"] = {"f1@c-1", "f1@c-2", "f1@c-3"};  // c-3 returned nothing
  plan.row_group["floods.f1"] = "c";
  ASSERT_TRUE(fleet::MergeGroupRows(plan, &run).ok());
  const rv1::Flood& m = run.floods().at("f1");
  EXPECT_FALSE(m.fates().has_queued());
  EXPECT_EQ(m.fates().established_unjoined(), 1u);
  EXPECT_THAT(m.members(), ElementsAre("f1@c-1", "f1@c-2"));
  EXPECT_THAT(run.not_observed(), Contains(HasSubstr("floods.f1: merged without f1@c-3")));
}

// The group's start lateness is its latest member's; when one member's start was not measured,
// the latest is unknown, so the merged row has none and says why (never the others' maximum).
TEST(MergeGroupRows, StartLatenessOnlyWhenEveryMemberStartWasMeasured) {
  common::Histogram all;
  for (bool both_measured : {true, false}) {
    SCOPED_TRACE(both_measured ? "both measured" : "one not measured");
    rv1::Run run;
    rv1::Flood a = MemberRow({100}, 1, all), b = MemberRow({100}, 1, all);
    a.set_start_lateness_ms(0.4);
    if (both_measured) b.set_start_lateness_ms(1.5);
    (*run.mutable_floods())["f1@c-1"] = a;
    (*run.mutable_floods())["f1@c-2"] = b;
    fleet::GroupPlan plan;
    plan.floods["f1"] = {"f1@c-1", "f1@c-2"};
    plan.row_group["floods.f1"] = "c";
    ASSERT_TRUE(fleet::MergeGroupRows(plan, &run).ok());
    const rv1::Flood& m = run.floods().at("f1");
    if (both_measured) {
      EXPECT_DOUBLE_EQ(m.start_lateness_ms(), 1.5);
    } else {
      EXPECT_FALSE(m.has_start_lateness_ms());
      EXPECT_THAT(run.not_observed(), Contains(HasSubstr("floods.f1.start_lateness_ms")));
    }
  }
}

TEST(MergeGroupRows, ListenersAddAcceptsAndKeepTheLargestPeak) {
  rv1::Run run;
  rv1::Listener a;
  a.set_backlog(9);
  a.set_accepted(5);
  a.set_accept_queue_peak(10);
  rv1::Listener b = a;
  b.set_accepted(7);
  b.set_accept_queue_peak(3);
  (*run.mutable_listeners())["l1@s-1"] = a;
  (*run.mutable_listeners())["l1@s-2"] = b;
  fleet::GroupPlan plan;
  plan.listeners["l1"] = {"l1@s-1", "l1@s-2"};
  plan.row_group["listeners.l1"] = "s";
  ASSERT_TRUE(fleet::MergeGroupRows(plan, &run).ok());
  const rv1::Listener& m = run.listeners().at("l1");
  EXPECT_EQ(m.group(), "s");
  EXPECT_EQ(m.accepted(), 12u);
  EXPECT_EQ(m.accept_queue_peak(), 10);
  EXPECT_EQ(m.backlog(), 9);
  EXPECT_EQ(run.listeners().at("l1@s-2").group(), "s");
}

}  // namespace
}  // namespace synq::controller
