// A scenario file in memory: hosts, settings, shaping, listeners, floods, sweep.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/labels.h"
#include "common/modes.h"
#include "controller/scenario/sweep_target.h"
#include "controller/scenario/sweep_value.h"
#include "controller/scenario/values.h"
#include "controller/search/search_def.h"

namespace synq::controller {

// `tls: {cert, key, ca, server_name}` of a host with an agent: the controller's certificate and
// key for that agent, the CA that signed the agent's, and the name to check on the agent's
// certificate (default: the host part of `agent`). Paths relative to the scenario file.
struct HostTls {
  std::string cert;
  std::string key;
  std::string ca;
  std::string server_name;
  bool empty() const { return cert.empty() && key.empty() && ca.empty() && server_name.empty(); }
};

// `discover: "dns://SERVER/NAME:PORT"` of a host group: the DNS name whose every A and AAAA
// record is an agent, asked of SERVER ("127.0.0.1:5353"; empty = the system's resolvers).
struct DiscoverTarget {
  std::string uri;         // as written, for messages
  std::string dns_server;  // "ip" or "ip:port"; empty = the system resolver
  std::string name;        // "synq-agent.synq.svc.cluster.local"
  uint16_t port = 0;       // the agents' gRPC port
};

// A host that stands for a group of agents (`discover:` or `agents: [...]`), expanded into
// member hosts NAME-1..NAME-N by controller/fleet/ once the members are known.
struct HostGroup {
  std::optional<DiscoverTarget> discover;  // set: DNS discovery; else `agents`
  std::vector<std::string> agents;         // static list of "host:port" / "unix:/path"
  int64_t count = 0;                       // agents that must answer; 0 with count_any
  bool count_any = false;                  // `count: any`: run with whoever answers (>= 1)
  common::Labels select;  // members are the agents whose labels (--label) all match; {} = all
};

struct HostSpec {
  std::string name;
  std::string agent;      // "ip:port" / "unix:/path" of a running synq-agent; empty = embedded
  std::string interface;  // the agent host's interface for shaping and capture ("eth0")
  int64_t addresses = 1;  // embedded hosts: how many 198.18.0.0/15 addresses it gets
  HostTls tls;            // empty = the command line's --tls-* (or plaintext); groups: every member
  std::optional<HostGroup> group;  // set: this host is a group of agents (no `agent`)
  bool embedded() const { return agent.empty() && !group; }
  bool is_group() const { return group.has_value(); }
};

using common::AcceptMode;

struct ListenerDef {
  std::string name;
  std::string host;
  std::string address;  // empty = the host's default ("0.0.0.0")
  int64_t port = 0;
  int64_t backlog = 128;
  AcceptMode accept = AcceptMode::kNever;
  std::chrono::nanoseconds accept_interval{0};
  double accept_rate = 0;  // paced, instead of accept_interval: accepts per second
  bool close_on_accept = false;
  // `pause: [{at: 2s, for: 3s}]`: no accepting in [at, at + for) after the flood start.
  struct Pause {
    std::chrono::nanoseconds at{0};
    std::chrono::nanoseconds length{0};
  };
  std::vector<Pause> pauses;
};

using common::CloseMode;

// How a flood's launch rate changes over time (`rate:` a number, {from, to, over} or
// {steps, each}); controller/scenario/rate_profile.h computes with it.
enum class RateKind { kConstant, kRamp, kSteps };

// A listener another process owns (nginx, the user's service), watched by the agent on `host`:
// floods may name it as a target, and its sockets join the fates like synq's own listeners'.
struct ObserveDef {
  std::string name;
  std::string host;
  int64_t port = 0;     // required, 1..65535
  std::string address;  // the listening address to pick when several listen on the port
};

struct FloodDef {
  std::string name;
  std::string host;
  std::string target;  // listener name or "ADDRESS:PORT"
  // Attempts; 0 = no cap (a flood with a `duration` and no `connections`).
  int64_t connections = 1;
  int64_t concurrency = 1;
  double rate = 0;  // kConstant: connects/s, 0 = as fast as concurrency allows
  RateKind rate_kind = RateKind::kConstant;
  double ramp_from = 0, ramp_to = 0;  // kRamp
  std::chrono::nanoseconds ramp_over{0};
  std::vector<double> steps;  // kSteps: connects/s, each for `steps_each`
  std::chrono::nanoseconds steps_each{0};
  std::chrono::nanoseconds duration{0};  // open-loop launch window; 0 = until `connections`
  std::chrono::nanoseconds lifetime{0};  // close rst/fin: after connect
  CloseMode close = CloseMode::kKeep;
  int64_t threads = 0;               // 0 = the agent's choice (cores, at most concurrency)
  std::vector<std::string> sources;  // local addresses as listed
  int64_t source_count = 0;          // `sources: N`: the first N addresses of the host
  std::chrono::nanoseconds connect_timeout{std::chrono::seconds(1)};
  std::chrono::nanoseconds start_after{0};
  std::chrono::nanoseconds hold{std::chrono::seconds(1)};
  // Shared by every run of a sweep (copies share one string).
  common::SharedText payload;
};

using common::ShapingBackend;

// Link shaping on packets leaving `host` (towards `to`, if set; else all peers).
struct ShapingDef {
  std::string host;
  std::string to;  // optional peer host name
  std::chrono::nanoseconds delay{0};
  std::chrono::nanoseconds jitter{0};
  double loss_percent = 0;
  uint64_t rate_bits_per_second = 0;
  ShapingBackend backend = ShapingBackend::kAuto;
};

// Packet capture on a host's interface during each run.
struct CaptureDef {
  std::string host;
};

// One sweep axis, made by the loader (or MakeSweepAxis in controller/scenario/sweep.h): the path
// resolved once into `target`, and each value typed once as written (`values`, the runs' params)
// and checked once for its field (`field_values[i]` is `values[i]` as the field stores it).
struct SweepAxis {
  std::string path;  // "listeners.l1.backlog", "settings.server.net.core.somaxconn"
  std::vector<SweepValue> values;
  SweepTarget target;
  std::vector<scenario::FieldValue> field_values;  // parallel to values

  bool resolved() const { return target.resolved() && field_values.size() == values.size(); }
};

// One `expect:` line: an assertion evaluated on every run's result (controller/verdict/).
struct ExpectDef {
  std::string expression;
  std::string path;  // "expect[0]", for errors
};

// `baseline:` tolerances for comparing runs with a baseline result. A field pattern may use `*`
// for one path segment ("floods.*.connect_latency_ms.p99").
struct BaselineDef {
  double tolerance_percent = 10;
  std::vector<std::pair<std::string, double>> fields;  // pattern -> tolerance percent
};

struct Scenario {
  std::string name;
  std::chrono::nanoseconds sample_interval{std::chrono::milliseconds(100)};
  std::vector<HostSpec> hosts;  // in file order; default one embedded "local"
  // host -> sysctl key -> value
  std::map<std::string, std::map<std::string, int64_t>> settings;
  std::vector<ShapingDef> shaping;
  std::vector<CaptureDef> captures;
  std::vector<ListenerDef> listeners;
  std::vector<ObserveDef> observes;  // `observe:`
  std::vector<FloodDef> floods;
  std::vector<SweepAxis> sweep;  // in file order
  std::vector<ExpectDef> expectations;
  BaselineDef baseline;
  std::optional<SearchDef> search;  // `search:`: each sweep point is a knee search

  const HostSpec* FindHost(const std::string& name) const;
  const ListenerDef* FindListener(const std::string& name) const;
  const ObserveDef* FindObserved(const std::string& name) const;
};

// One combination of sweep values: a concrete scenario plus the (path, typed value) pairs it was
// made with, in axis order.
struct RunPlan {
  Scenario scenario;
  std::vector<std::pair<std::string, SweepValue>> params;
};

}  // namespace synq::controller
