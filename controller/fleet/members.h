// Who a host group's members are: the endpoints a group names (static list or DNS discovery),
// probed with GetHostInfo; a group with fewer answering agents than its `count` refuses to run.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/agent_client.h"
#include "controller/fleet/expand.h"
#include "controller/scenario/scenario.h"

namespace synq::controller::fleet {

// One endpoint asked for its host info: the info, or why it did not answer.
struct MemberProbe {
  std::string endpoint;
  absl::StatusOr<v1::HostInfo> info;
};

// Connects to every endpoint at once (ConnectAgents: the callback API) and asks GetHostInfo;
// results in the order of `endpoints`. Each agent that answered is also moved into `connected`
// (optional, by endpoint), so the run can keep the connection instead of dialling again.
std::vector<MemberProbe> ProbeAgents(const std::vector<std::string>& endpoints,
                                     const AgentSecurity& security,
                                     std::chrono::nanoseconds connect_timeout,
                                     std::map<std::string, ConnectedAgent>* connected = nullptr);

// The members of group `host` given what was found (the listed or discovered endpoints) and how
// each answered: those that answered and whose labels match the group's select:, in sorted
// endpoint order. Unavailable when fewer than `count` are members (with `count: any`, fewer
// than one); the message names the field ("hosts.clients.discover"), how many were found,
// answered and matched of how many required, the addresses found, each one that did not answer
// with its reason and each one not selected with its labels.
absl::StatusOr<std::vector<std::string>> ChooseMembers(const HostSpec& host,
                                                       const std::vector<std::string>& found,
                                                       const std::vector<MemberProbe>& probes);

// The endpoints of group `host` that are not also a host of their own in `scenario` (another
// host's `agent:`, compared as written): one agent cannot be two hosts of a run, and the host
// named on its own keeps it (a DaemonSet's Service also lists the server node's agent).
// `excluded` (optional) receives each left out, with the host that keeps it.
std::vector<std::string> WithoutFixedAgents(const Scenario& scenario, const HostSpec& host,
                                            const std::vector<std::string>& found,
                                            std::vector<std::string>* excluded = nullptr);

// Every group of `scenario`: its endpoints (DNS lookups for discover:), probed with the group's
// security (security.at(group name)), chosen by ChooseMembers. The first group that fails stops
// (Unavailable / NotFound, message starting with the field path). `connected` (optional)
// receives every agent that answered, by endpoint (ProbeAgents).
absl::StatusOr<GroupMembers> FindGroupMembers(
    const Scenario& scenario, const std::map<std::string, AgentSecurity>& security,
    std::chrono::nanoseconds connect_timeout, std::chrono::milliseconds dns_timeout,
    std::map<std::string, ConnectedAgent>* connected = nullptr);

}  // namespace synq::controller::fleet
