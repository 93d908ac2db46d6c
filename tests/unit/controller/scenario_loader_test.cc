// Proves that scenario YAML loads into the expected model, that every validation rule reports
// an error with the right path, and that all errors of a file are collected in one pass.
#include "controller/scenario_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace synq::controller {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

std::vector<std::string> Errors(const LoadResult& result) {
  std::vector<std::string> out;
  for (const ScenarioError& e : result.errors) out.push_back(e.ToString());
  return out;
}

// Loads `yaml` and expects no errors.
Scenario LoadOk(const std::string& yaml) {
  LoadResult result = LoadScenario(yaml);
  EXPECT_THAT(Errors(result), IsEmpty()) << yaml;
  return result.scenario;
}

// Every error of `yaml`, as "path: message".
std::vector<std::string> ErrorsOf(const std::string& yaml) { return Errors(LoadScenario(yaml)); }

constexpr char kExample[] = R"(
name: backlog-sweep
sample_interval: 100ms
hosts:
  server: {}
  client: {}
settings:
  server: { net.core.somaxconn: 16 }
shaping:
  - { host: server, to: client, delay: 200ms, jitter: 0ms, loss: 0, rate: 0, backend: auto }
capture: [server]
listeners:
  - { name: l1, host: server, port: 0, backlog: 4, accept: never }
floods:
  - { name: f1, host: client, target: l1, connections: 20, concurrency: 1, rate: 0,
      connect_timeout: 1s, start_after: 0s, hold: 1s, payload: "" }
sweep:
  listeners.l1.backlog: [-1, 0, 1, 2, 3, 4, 15, 16, 17, 100]
)";

TEST(ScenarioLoader, FullExampleParsesToExpectedModel) {
  const Scenario s = LoadOk(kExample);
  EXPECT_EQ(s.name, "backlog-sweep");
  EXPECT_EQ(s.sample_interval, milliseconds(100));
  ASSERT_THAT(s.hosts, SizeIs(2));
  EXPECT_EQ(s.hosts[0].name, "server");
  EXPECT_EQ(s.hosts[1].name, "client");
  EXPECT_TRUE(s.hosts[0].embedded());
  EXPECT_TRUE(s.hosts[1].embedded());
  EXPECT_EQ(s.settings.at("server").at("net.core.somaxconn"), 16);
  ASSERT_THAT(s.shaping, SizeIs(1));
  EXPECT_EQ(s.shaping[0].host, "server");
  EXPECT_EQ(s.shaping[0].to, "client");
  EXPECT_EQ(s.shaping[0].delay, milliseconds(200));
  EXPECT_EQ(s.shaping[0].jitter, nanoseconds(0));
  EXPECT_EQ(s.shaping[0].loss_percent, 0);
  EXPECT_EQ(s.shaping[0].rate_bits_per_second, 0u);
  EXPECT_EQ(s.shaping[0].backend, ShapingBackend::kAuto);
  ASSERT_THAT(s.captures, SizeIs(1));
  EXPECT_EQ(s.captures[0].host, "server");
  ASSERT_THAT(s.listeners, SizeIs(1));
  const ListenerDef& l = s.listeners[0];
  EXPECT_EQ(l.name, "l1");
  EXPECT_EQ(l.host, "server");
  EXPECT_EQ(l.port, 0);
  EXPECT_EQ(l.backlog, 4);
  EXPECT_EQ(l.accept, AcceptMode::kNever);
  EXPECT_EQ(l.address, "");
  EXPECT_FALSE(l.close_on_accept);
  ASSERT_THAT(s.floods, SizeIs(1));
  const FloodDef& f = s.floods[0];
  EXPECT_EQ(f.name, "f1");
  EXPECT_EQ(f.host, "client");
  EXPECT_EQ(f.target, "l1");
  EXPECT_EQ(f.connections, 20);
  EXPECT_EQ(f.concurrency, 1);
  EXPECT_EQ(f.rate, 0);
  EXPECT_EQ(f.connect_timeout, seconds(1));
  EXPECT_EQ(f.start_after, nanoseconds(0));
  EXPECT_EQ(f.hold, seconds(1));
  EXPECT_EQ(f.payload, "");
  ASSERT_THAT(s.sweep, SizeIs(1));
  EXPECT_EQ(s.sweep[0].path, "listeners.l1.backlog");
  ASSERT_THAT(s.sweep[0].values, SizeIs(10));
  EXPECT_EQ(s.sweep[0].values[0].Text(), "-1");
  EXPECT_EQ(s.sweep[0].values[0].kind(), SweepValue::Kind::kInt);
  EXPECT_EQ(s.sweep[0].values[9].Text(), "100");
}

TEST(ScenarioLoader, MissingHostsMeansOneEmbeddedHostNamedLocal) {
  const Scenario s = LoadOk("name: x\nlisteners: [{name: l1}]\nfloods: [{name: f1, target: l1}]\n");
  ASSERT_THAT(s.hosts, SizeIs(1));
  EXPECT_EQ(s.hosts[0].name, "local");
  EXPECT_TRUE(s.hosts[0].embedded());
  EXPECT_EQ(s.listeners[0].host, "local");
  EXPECT_EQ(s.floods[0].host, "local");
}

TEST(ScenarioLoader, ItemHostDefaultsToTheOnlyDeclaredHost) {
  const Scenario s = LoadOk("name: x\nhosts: {box: {}}\nlisteners: [{name: l1}]\n");
  EXPECT_EQ(s.listeners[0].host, "box");
}

TEST(ScenarioLoader, HostIsRequiredWhenThereAreSeveralHosts) {
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {a: {}, b: {}}\nlisteners: [{name: l1}]\n"),
              ElementsAre("listeners.l1.host: required when there is more than one host"));
}

TEST(ScenarioLoader, UnknownHostIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {a: {}}\nlisteners: [{name: l1, host: b}]\n"),
              ElementsAre("listeners.l1.host: no host named 'b'"));
}

TEST(ScenarioLoader, AgentHostsKeepTheirAddress) {
  const Scenario s = LoadOk(R"(
name: x
hosts:
  a: { agent: "127.0.0.1:7700" }
  b: { agent: "unix:/run/synq.sock" }
  c: { agent: "agent-0.synq:7700" }
  d: {}
)");
  ASSERT_THAT(s.hosts, SizeIs(4));
  EXPECT_EQ(s.hosts[0].agent, "127.0.0.1:7700");
  EXPECT_FALSE(s.hosts[0].embedded());
  EXPECT_EQ(s.hosts[1].agent, "unix:/run/synq.sock");
  EXPECT_EQ(s.hosts[2].agent, "agent-0.synq:7700");
  EXPECT_TRUE(s.hosts[3].embedded());
}

TEST(ScenarioLoader, AgentAddressWithoutPortIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {client: {agent: 10.0.0.1}, s: {agent: 'unix:'}}\n"),
              ElementsAre(StartsWith("hosts.client.agent: expected HOST:PORT"),
                          "hosts.s.agent: unix: needs a socket path"));
}

TEST(ScenarioLoader, AgentHostsMayNameTheirInterfaceEmbeddedOnesMayNot) {
  const Scenario s = LoadOk("name: x\nhosts: {a: {agent: 'h:7700', interface: eth1}}\n");
  EXPECT_EQ(s.hosts[0].interface, "eth1");
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {a: {interface: eth1}, "
                       "b: {agent: 'h:1', interface: 'a/b'}}\n"),
              ElementsAre(StartsWith("hosts.a.interface: only for hosts with an agent"),
                          StartsWith("hosts.b.interface: expected an interface name")));
}

TEST(ScenarioLoader, TwoHostsOnOneAgentAreAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {a: {agent: 'h:7700'}, b: {agent: 'h:7700'}, c: {}, "
                       "d: {}}\n"),
              ElementsAre("hosts.b.agent: same agent as hosts.a"));
}

TEST(ScenarioLoader, HostNameMustBeUsableAsANamespaceName) {
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {Server: {}, -a: {}, abcdefghijklmnop: {}, "
                       "abcdefghijklmno: {}, a-1: {}}\n"),
              ElementsAre(StartsWith("hosts.Server: host names must match"),
                          StartsWith("hosts.-a: host names must match"),
                          StartsWith("hosts.abcdefghijklmnop: host names must match")));
}

TEST(ScenarioLoader, EmptyHostsMapIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {}\n"), ElementsAre("hosts: needs at least one host"));
}

TEST(ScenarioLoader, NameIsRequiredAndNotEmpty) {
  EXPECT_THAT(ErrorsOf("sample_interval: 1s\n"), ElementsAre("name: required"));
  EXPECT_THAT(ErrorsOf("name: ''\n"), ElementsAre("name: must not be empty"));
  EXPECT_THAT(ErrorsOf(""), ElementsAre("name: required"));
}

TEST(ScenarioLoader, SampleIntervalDefaultsTo100msAndIsAtLeast1ms) {
  EXPECT_EQ(LoadOk("name: x\n").sample_interval, milliseconds(100));
  EXPECT_EQ(LoadOk("name: x\nsample_interval: 1500us\n").sample_interval, microseconds(1500));
  EXPECT_THAT(ErrorsOf("name: x\nsample_interval: 0\n"),
              ElementsAre("sample_interval: must be greater than 0, got '0'"));
}

TEST(ScenarioLoader, DocumentThatIsNotAMapIsAnError) {
  EXPECT_THAT(ErrorsOf("- a\n- b\n"), ElementsAre(StartsWith("<root>: expected a map")));
}

TEST(ScenarioLoader, UnknownFieldsAreErrorsAtEveryLevel) {
  EXPECT_THAT(ErrorsOf(R"(
name: x
colour: blue
hosts: { local: { agnet: "1.2.3.4:5" } }
shaping: [{ delay: 1ms, dealy: 2ms }]
listeners: [{ name: l1, backlg: 3 }]
floods: [{ name: f1, target: l1, conections: 3 }]
)"),
              ElementsAre("colour: unknown field", "hosts.local.agnet: unknown field",
                          "shaping[0].dealy: unknown field", "listeners.l1.backlg: unknown field",
                          "floods.f1.conections: unknown field"));
}

TEST(ScenarioLoader, DuplicateFieldIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, port: 1, port: 2}]\n"),
              ElementsAre("listeners.l1.port: duplicate field"));
}

TEST(ScenarioLoader, WrongTypesNameTheExpectedType) {
  EXPECT_THAT(ErrorsOf(R"(
name: x
listeners:
  - { name: l1, backlog: lots, close_on_accept: maybe, port: "80" }
  - { name: l2, address: [1, 2] }
floods: { f1: {} }
)"),
              ElementsAre("listeners.l1.backlog: expected an integer, got 'lots'",
                          "listeners.l1.close_on_accept: expected a boolean (true or false), got "
                          "'maybe'",
                          "listeners.l1.port: expected an integer, got the string '80'",
                          "listeners.l2.address: expected a scalar value, got a list",
                          "floods: expected a list, got a map"));
}

TEST(ScenarioLoader, AllowedSettingsLoadWithDottedKeys) {
  const Scenario s = LoadOk(R"(
name: x
settings:
  local:
    net.core.somaxconn: 2147483647
    net.ipv4.tcp_abort_on_overflow: 1
    net.ipv4.tcp_synack_retries: 0
    net.ipv4.tcp_syn_retries: 127
    net.ipv4.tcp_syncookies: 2
    net.ipv4.tcp_max_syn_backlog: 1
)");
  const auto& local = s.settings.at("local");
  EXPECT_EQ(local.at("net.core.somaxconn"), 2147483647);
  EXPECT_EQ(local.at("net.ipv4.tcp_abort_on_overflow"), 1);
  EXPECT_EQ(local.at("net.ipv4.tcp_synack_retries"), 0);
  EXPECT_EQ(local.at("net.ipv4.tcp_syn_retries"), 127);
  EXPECT_EQ(local.at("net.ipv4.tcp_syncookies"), 2);
  EXPECT_EQ(local.at("net.ipv4.tcp_max_syn_backlog"), 1);
}

// Which keys a host allows, and their ranges, is its agent's catalog (checked once the hosts
// answer, controller/run/setting_check): the loader checks only the shape.
TEST(ScenarioLoader, SettingKeyMustLookLikeASysctlName) {
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {server: {}}\nsettings: {server: {net.foo: 1}}\n"),
              IsEmpty());
  EXPECT_THAT(ErrorsOf("name: x\nhosts: {server: {}}\nsettings: {server: {Net/Foo: 1}}\n"),
              ElementsAre(StartsWith("settings.server.Net/Foo: not a sysctl key")));
}

TEST(ScenarioLoader, SettingValueMustBeAnIntegerRangeIsTheAgents) {
  EXPECT_THAT(ErrorsOf(R"(
name: x
settings:
  local:
    net.ipv4.tcp_syncookies: 3
    net.core.somaxconn: -1
    net.ipv4.tcp_abort_on_overflow: yes
)"),
              ElementsAre("settings.local.net.ipv4.tcp_abort_on_overflow: expected an integer, got "
                          "'yes'"));
}

TEST(ScenarioLoader, SettingsForUnknownHostIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nsettings: {server: {net.core.somaxconn: 1}}\n"),
              ElementsAre("settings.server: no host named 'server'"));
}

TEST(ScenarioLoader, ListenerDefaultsAreApplied) {
  const ListenerDef l = LoadOk("name: x\nlisteners: [{name: l1}]\n").listeners.at(0);
  EXPECT_EQ(l.port, 0);
  EXPECT_EQ(l.backlog, 128);
  EXPECT_EQ(l.accept, AcceptMode::kNever);
  EXPECT_EQ(l.accept_interval, nanoseconds(0));
  EXPECT_FALSE(l.close_on_accept);
  EXPECT_EQ(l.address, "");
}

TEST(ScenarioLoader, ListenerFieldsLoad) {
  const Scenario s = LoadOk(R"(
name: x
listeners:
  - { name: l1, port: 8080, backlog: -1, accept: paced, accept_interval: 1.5s,
      close_on_accept: true, address: "::1" }
  - { name: l2, accept: immediate, address: 127.0.0.1, backlog: 2147483647 }
)");
  const ListenerDef& l1 = s.listeners.at(0);
  EXPECT_EQ(l1.port, 8080);
  EXPECT_EQ(l1.backlog, -1);
  EXPECT_EQ(l1.accept, AcceptMode::kPaced);
  EXPECT_EQ(l1.accept_interval, milliseconds(1500));
  EXPECT_TRUE(l1.close_on_accept);
  EXPECT_EQ(l1.address, "::1");
  EXPECT_EQ(s.listeners.at(1).accept, AcceptMode::kImmediate);
  EXPECT_EQ(s.listeners.at(1).backlog, 2147483647);
}

TEST(ScenarioLoader, ListenerNameIsRequiredAndNamelessItemsAreNamedByIndex) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1}, {port: 99999}]\n"),
              ElementsAre("listeners[1].name: required",
                          "listeners[1].port: must be between 0 and 65535, got 99999"));
}

TEST(ScenarioLoader, DuplicateListenerNameIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1}, {name: l1, backlog: x}]\n"),
              ElementsAre("listeners[1].name: duplicate name 'l1'",
                          "listeners[1].backlog: expected an integer, got 'x'"));
}

TEST(ScenarioLoader, ListenerNameWithADotIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: a.b}]\n"),
              ElementsAre(StartsWith("listeners[0].name: 'a.b' is not a valid name")));
}

TEST(ScenarioLoader, ListenerPortMustBeInRange) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, port: -1}, {name: l2, port: 65536}]\n"),
              ElementsAre("listeners.l1.port: must be between 0 and 65535, got -1",
                          "listeners.l2.port: must be between 0 and 65535, got 65536"));
  EXPECT_EQ(LoadOk("name: x\nlisteners: [{name: l1, port: 65535}]\n").listeners[0].port, 65535);
}

TEST(ScenarioLoader, BacklogOutsideInt32IsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, backlog: 2147483648}]\n"),
              ElementsAre(HasSubstr("listeners.l1.backlog: must be between -2147483648 and "
                                    "2147483647")));
  EXPECT_EQ(LoadOk("name: x\nlisteners: [{name: l1, backlog: -2147483648}]\n").listeners[0].backlog,
            -2147483648LL);
}

TEST(ScenarioLoader, UnknownAcceptModeIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, accept: sometimes}]\n"),
              ElementsAre("listeners.l1.accept: expected one of never, paced, immediate, got "
                          "'sometimes'"));
}

TEST(ScenarioLoader, PacedAcceptNeedsAPositiveInterval) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, accept: paced}]\n"),
              ElementsAre("listeners.l1.accept_interval: accept: paced needs accept_interval > 0 "
                          "or accept_rate > 0"));
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, accept: paced, accept_interval: 0}]\n"),
              ElementsAre("listeners.l1.accept_interval: must be greater than 0, got '0'",
                          "listeners.l1.accept_interval: accept: paced needs accept_interval > 0 "
                          "or accept_rate > 0"));
}

TEST(ScenarioLoader, AcceptIntervalWithoutPacedAcceptIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, accept: immediate, accept_interval: 1ms}, "
                       "{name: l2, accept_interval: 1ms}]\n"),
              ElementsAre("listeners.l1.accept_interval: only used with accept: paced",
                          "listeners.l2.accept_interval: only used with accept: paced"));
}

TEST(ScenarioLoader, PacedByRateAndPausesLoad) {
  const Scenario s = LoadOk(R"(name: x
listeners:
  - { name: l1, accept: paced, accept_rate: 250.5, pause: [{at: 2s, for: 3s}, {at: 0, for: 1ms}] }
  - { name: l2, accept: immediate, pause: [] }
)");
  const ListenerDef& l1 = s.listeners[0];
  EXPECT_EQ(l1.accept_rate, 250.5);
  EXPECT_EQ(l1.accept_interval, nanoseconds(0));
  ASSERT_EQ(l1.pauses.size(), 2u);
  EXPECT_EQ(l1.pauses[0].at, seconds(2));
  EXPECT_EQ(l1.pauses[0].length, seconds(3));
  EXPECT_EQ(l1.pauses[1].at, nanoseconds(0));
  EXPECT_EQ(l1.pauses[1].length, milliseconds(1));
  EXPECT_TRUE(s.listeners[1].pauses.empty());
}

TEST(ScenarioLoader, AcceptRateErrorsNameTheField) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, accept: paced, accept_rate: 0}]\n"),
              ElementsAre("listeners.l1.accept_rate: must be greater than 0 (accepts per second)",
                          "listeners.l1.accept_interval: accept: paced needs accept_interval > 0 "
                          "or accept_rate > 0"));
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, accept: paced, accept_rate: fast}]\n"),
              ElementsAre("listeners.l1.accept_rate: expected a number, got 'fast'",
                          "listeners.l1.accept_interval: accept: paced needs accept_interval > 0 "
                          "or accept_rate > 0"));
  EXPECT_THAT(
      ErrorsOf("name: x\nlisteners: [{name: l1, accept: paced, accept_rate: 10, "
               "accept_interval: 100ms}]\n"),
      ElementsAre("listeners.l1.accept_rate: give accept_rate or accept_interval, not both "
                  "(accept_rate 10/s, accept_interval 100 ms)"));
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, accept: immediate, accept_rate: 10}]\n"),
              ElementsAre("listeners.l1.accept_rate: only used with accept: paced"));
}

TEST(ScenarioLoader, PauseErrorsNameTheEntry) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, pause: 2s}]\n"),
              ElementsAre("listeners.l1.pause: expected a list of {at: DURATION, for: DURATION}, "
                          "got a scalar"));
  EXPECT_THAT(
      ErrorsOf("name: x\nlisteners: [{name: l1, pause: [{at: 1s}, {at: -1s, for: 0, x: 1}]}]\n"),
      ElementsAre("listeners.l1.pause[0].for: required",
                  "listeners.l1.pause[1].at: negative duration '-1s'",
                  "listeners.l1.pause[1].for: must be greater than 0, got '0'",
                  "listeners.l1.pause[1].x: unknown field (known: at, for)"));
}

TEST(ScenarioLoader, AcceptRateIsSweepable) {
  const Scenario s = LoadOk(R"(name: x
listeners: [{ name: l1, accept: paced, accept_rate: 10 }]
sweep:
  listeners.l1.accept_rate: [100, 200]
)");
  ASSERT_EQ(s.sweep.size(), 1u);
  EXPECT_EQ(s.sweep[0].path, "listeners.l1.accept_rate");
}

TEST(ScenarioLoader, ListenerAddressMustBeAnIpAddress) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1, address: localhost}]\n"),
              ElementsAre("listeners.l1.address: 'localhost' is not an IPv4 or IPv6 address"));
}

TEST(ScenarioLoader, FloodDefaultsAreApplied) {
  const FloodDef f =
      LoadOk("name: x\nlisteners: [{name: l1}]\nfloods: [{name: f1, target: l1}]\n").floods.at(0);
  EXPECT_EQ(f.connections, 1);
  EXPECT_EQ(f.concurrency, 1);
  EXPECT_EQ(f.rate, 0);
  EXPECT_EQ(f.connect_timeout, seconds(1));
  EXPECT_EQ(f.start_after, nanoseconds(0));
  EXPECT_EQ(f.hold, seconds(1));
  EXPECT_EQ(f.payload, "");
}

TEST(ScenarioLoader, FloodToUnknownListenerIsAnErrorNamingTheTarget) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1}]\nfloods: [{name: f1, target: l9}]\n"),
              ElementsAre("floods.f1.target: no listener named 'l9'"));
}

TEST(ScenarioLoader, FloodToAddressAndPortIsAccepted) {
  const Scenario s = LoadOk(R"(
name: x
floods:
  - { name: f1, target: "127.0.0.1:80" }
  - { name: f2, target: "[::1]:8080", payload: "GET / HTTP/1.0\r\n\r\n" }
)");
  EXPECT_EQ(s.floods[0].target, "127.0.0.1:80");
  EXPECT_EQ(s.floods[1].target, "[::1]:8080");
  EXPECT_EQ(s.floods[1].payload, "GET / HTTP/1.0\r\n\r\n");
}

TEST(ScenarioLoader, FloodToMalformedAddressIsAnError) {
  EXPECT_THAT(
      ErrorsOf("name: x\nfloods: [{name: f1, target: 'localhost:80'}, "
               "{name: f2, target: '1.2.3.4:0'}, {name: f3, target: '1.2.3.4:99999'}]\n"),
      ElementsAre(StartsWith("floods.f1.target: neither a listener name nor ADDRESS:PORT"),
                  "floods.f2.target: '1.2.3.4:0': port 0 cannot be connected to",
                  StartsWith("floods.f3.target: neither a listener name nor ADDRESS:PORT")));
}

TEST(ScenarioLoader, FloodTargetIsRequired) {
  EXPECT_THAT(ErrorsOf("name: x\nfloods: [{name: f1}]\n"),
              ElementsAre("floods.f1.target: required"));
}

TEST(ScenarioLoader, NamelessFloodIsReportedByIndex) {
  EXPECT_THAT(ErrorsOf(R"(
name: x
listeners: [{name: l1}]
floods:
  - { name: f1, target: l1 }
  - { name: f2, target: l1 }
  - { target: l1, connections: 0 }
)"),
              ElementsAre("floods[2].name: required",
                          "floods[2].connections: must be between 1 and 10000000, got 0"));
}

TEST(ScenarioLoader, DuplicateFloodNameIsAnError) {
  EXPECT_THAT(ErrorsOf("name: x\nlisteners: [{name: l1}]\n"
                       "floods: [{name: f1, target: l1}, {name: f1, target: l1}]\n"),
              ElementsAre("floods[1].name: duplicate name 'f1'"));
}

TEST(ScenarioLoader, NegativeOrZeroFloodCountsAreErrors) {
  EXPECT_THAT(ErrorsOf(R"(
name: x
listeners: [{name: l1}]
floods: [{ name: f1, target: l1, connections: -5, concurrency: 0, rate: -1 }]
)"),
              ElementsAre("floods.f1.connections: must be between 1 and 10000000, got -5",
                          "floods.f1.concurrency: must be between 1 and 1000000, got 0",
                          "floods.f1.rate: must be between 0 and 1e+07, got -1"));
}

TEST(ScenarioLoader, FloodCountsAboveSafetyLimitsAreErrors) {
  EXPECT_THAT(ErrorsOf(R"(
name: x
listeners: [{name: l1}]
floods: [{ name: f1, target: l1, connections: 10000001, concurrency: 1000001 }]
)"),
              ElementsAre("floods.f1.connections: must be between 1 and 10000000, got 10000001",
                          "floods.f1.concurrency: must be between 1 and 1000000, got 1000001"));
  const FloodDef f = LoadOk(R"(
name: x
listeners: [{name: l1}]
floods: [{ name: f1, target: l1, connections: 10000000, concurrency: 1000000, rate: 2.5 }]
)")
                         .floods.at(0);
  EXPECT_EQ(f.connections, 10000000);
  EXPECT_EQ(f.concurrency, 1000000);
  EXPECT_EQ(f.rate, 2.5);
}

TEST(ScenarioLoader, FloodDurationsAreChecked) {
  EXPECT_THAT(ErrorsOf(R"(
name: x
listeners: [{name: l1}]
floods: [{ name: f1, target: l1, connect_timeout: 0s, start_after: -1s, hold: 5 }]
)"),
              ElementsAre("floods.f1.connect_timeout: must be greater than 0, got '0s'",
                          "floods.f1.start_after: negative duration '-1s'",
                          "floods.f1.hold: '5' needs a unit: ms, s or us"));
  const FloodDef f = LoadOk(R"(
name: x
listeners: [{name: l1}]
floods: [{ name: f1, target: l1, connect_timeout: 250ms, start_after: 2s, hold: 0 }]
)")
                         .floods.at(0);
  EXPECT_EQ(f.connect_timeout, milliseconds(250));
  EXPECT_EQ(f.start_after, seconds(2));
  EXPECT_EQ(f.hold, nanoseconds(0));
}

TEST(ScenarioLoader, ShapingFieldsLoad) {
  const Scenario s = LoadOk(R"(
name: x
hosts: {server: {}, client: {}}
shaping:
  - { host: server, delay: 50ms, jitter: 5ms, loss: 1.5, rate: 10mbit, backend: netem }
  - { host: client, to: server, rate: 1gbit, backend: nfqueue }
  - { host: client, rate: 64000 }
)");
  ASSERT_THAT(s.shaping, SizeIs(3));
  EXPECT_EQ(s.shaping[0].to, "");
  EXPECT_EQ(s.shaping[0].delay, milliseconds(50));
  EXPECT_EQ(s.shaping[0].jitter, milliseconds(5));
  EXPECT_EQ(s.shaping[0].loss_percent, 1.5);
  EXPECT_EQ(s.shaping[0].rate_bits_per_second, 10'000'000u);
  EXPECT_EQ(s.shaping[0].backend, ShapingBackend::kNetem);
  EXPECT_EQ(s.shaping[1].to, "server");
  EXPECT_EQ(s.shaping[1].rate_bits_per_second, 1'000'000'000u);
  EXPECT_EQ(s.shaping[1].backend, ShapingBackend::kNfqueue);
  EXPECT_EQ(s.shaping[2].rate_bits_per_second, 64000u);
}

TEST(ScenarioLoader, BadShapingValuesAreErrorsByIndex) {
  EXPECT_THAT(
      ErrorsOf(R"(
name: x
hosts: {server: {}, client: {}}
shaping:
  - { host: server, to: nowhere, delay: 200, loss: 101, rate: fast, backend: tc }
  - { host: client, to: client }
  - { delay: 1ms }
)"),
      UnorderedElementsAre("shaping[0].to: no host named 'nowhere'",
                           "shaping[0].backend: expected one of auto, netem, nfqueue, got 'tc'",
                           "shaping[0].delay: '200' needs a unit: ms, s or us",
                           "shaping[0].loss: must be between 0 and 100, got 101",
                           StartsWith("shaping[0].rate: expected a rate in bits/s"),
                           "shaping[1].to: must differ from host",
                           "shaping[2].host: required when there is more than one host"));
}

TEST(ScenarioLoader, CaptureOfUnknownHostIsAnError) {
  EXPECT_THAT(
      ErrorsOf("name: x\nhosts: {server: {}}\ncapture: [server, client, server]\n"),
      ElementsAre("capture[1]: no host named 'client'", "capture[2]: host 'server' listed twice"));
}

TEST(ScenarioLoader, AllErrorsAreCollectedInOnePass) {
  const LoadResult result = LoadScenario(R"(
name: three-mistakes
sample_interval: fast
listeners:
  - { name: l1, backlog: many }
floods:
  - { name: f1, target: l9 }
)");
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(Errors(result), ElementsAre(StartsWith("sample_interval: "),
                                          "listeners.l1.backlog: expected an integer, got 'many'",
                                          "floods.f1.target: no listener named 'l9'"));
}

TEST(ScenarioLoader, YamlSyntaxErrorIsOneErrorWithLineAndColumn) {
  const LoadResult result = LoadScenario("name: x\nlisteners: [{name: l1\n");
  ASSERT_THAT(result.errors, SizeIs(1));
  EXPECT_EQ(result.errors[0].path, "<yaml>");
  EXPECT_THAT(result.errors[0].message, AllOf(HasSubstr("line "), HasSubstr("column ")));
  EXPECT_THAT(Errors(LoadScenario("a: b: c\n")), ElementsAre(StartsWith("<yaml>: line 1, column")));
}

TEST(ParseDuration, AcceptsTheDocumentedForms) {
  const struct {
    const char* text;
    nanoseconds want;
  } kCases[] = {
      {"100ms", milliseconds(100)}, {"2s", seconds(2)},
      {"1.5s", milliseconds(1500)}, {"250us", microseconds(250)},
      {"0", nanoseconds(0)},        {"0s", nanoseconds(0)},
      {"0.5ms", microseconds(500)}, {"0.000001s", microseconds(1)},
      {"3600s", seconds(3600)},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<nanoseconds> d = ParseDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(*d, c.want) << c.text;
  }
}

TEST(ParseDuration, RejectsBadForms) {
  const struct {
    const char* text;
    const char* message;
  } kCases[] = {
      {"5", "needs a unit: ms, s or us"},
      {"1.5", "needs a unit: ms, s or us"},
      {"-1s", "negative duration"},
      {"-0", "negative duration"},
      {"5m", "unknown unit 'm'"},
      {"5 hours", "unknown unit"},
      {"", "empty duration"},
      {"ms", "expected a duration like 100ms"},
      {"1.2.3s", "expected a duration like 100ms"},
      {".5s", "expected a duration like 100ms"},
      {"1e3ms", "unknown unit"},
      {"99999999999s", "too long"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<nanoseconds> d = ParseDuration(c.text);
    ASSERT_FALSE(d.ok()) << c.text;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(c.message)) << c.text;
  }
}

TEST(ScenarioLoader, LoadScenarioFileOnMissingFileIsOneFileError) {
  const LoadResult result = LoadScenarioFile("/nonexistent/synq/scenario.yaml");
  ASSERT_THAT(result.errors, SizeIs(1));
  EXPECT_EQ(result.errors[0].path, "<file>");
  EXPECT_THAT(result.errors[0].message, HasSubstr("/nonexistent/synq/scenario.yaml"));
}

TEST(ScenarioLoader, LoadScenarioFileReadsTheFile) {
  char path[] = "/tmp/synq_scenario_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = kExample;
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  const LoadResult result = LoadScenarioFile(path);
  unlink(path);
  EXPECT_THAT(Errors(result), IsEmpty());
  EXPECT_EQ(result.scenario.name, "backlog-sweep");
}

}  // namespace
}  // namespace synq::controller
