// Checks a scenario's settings against the catalog each host's agent publishes
// (HostInfo.setting_catalog): the agent keeps the one list of keys and ranges, the controller
// keeps none. The loader checks only the shape (an integer per key).
#pragma once

#include <string>
#include <vector>

#include "controller/run/run_context.h"
#include "controller/scenario/scenario.h"

namespace synq::controller {

// One message per bad setting over every sweep point, each once, naming `settings.HOST.KEY`,
// the value and the host's range ("settings.server.net.ipv4.tcp_syncookies: 3 is out of range
// [0, 2] on this host's agent"), or the allowed keys for a key the agent does not know. A host
// whose agent publishes no catalog (an older agent) is left to the agent's own check.
std::vector<std::string> CheckSettingsAgainstCatalogs(const std::vector<RunPlan>& plans,
                                                      const std::vector<HostHandle>& hosts);

}  // namespace synq::controller
