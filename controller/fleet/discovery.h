// Finds the agents of a host group's `discover:` URI: every A and AAAA record of the name, asked
// with c-ares (which, unlike getaddrinfo, can ask a given DNS server).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/scenario/scenario.h"

namespace synq::controller::fleet {

// The agents' endpoints ("198.18.64.1:7700", "[fd00::1]:7700"), one per distinct address, in
// sorted endpoint order (SortEndpoints). NotFound when the name has no A/AAAA record;
// Unavailable when the DNS server did not answer within `timeout` (per try, two tries). The
// message names the name and the server asked.
absl::StatusOr<std::vector<std::string>> DiscoverAgents(const DiscoverTarget& target,
                                                        std::chrono::milliseconds timeout);

// Sorts endpoints by address (IPv4 before IPv6, numerically), then port; anything that is not
// an IP endpoint (a DNS name, unix:) after those, by text. Duplicates are removed.
void SortEndpoints(std::vector<std::string>& endpoints);

}  // namespace synq::controller::fleet
