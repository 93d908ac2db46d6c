// What an agent can tell about its host: identity, settings, capabilities and their absence.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace synq::agent {

enum class Capability { kIoUring, kSockDiag, kSysctlWrite, kNetem, kNfqueue, kPcap, kTracefs };

struct HostFacts {
  std::string hostname;
  std::string kernel_release;
  std::map<std::string, int64_t> settings;
  std::vector<Capability> capabilities;
  std::vector<std::pair<Capability, std::string>> missing;  // capability, reason
  std::vector<std::string> addresses;                       // non-loopback interface addresses
  uint64_t fd_limit_soft = 0;
  uint64_t fd_limit_hard = 0;
};

// Probes the host (in the calling thread's network namespace). Cheap enough to run per request.
HostFacts ProbeHostFacts(const std::string& proc_sys_dir = "/proc/sys");

}  // namespace synq::agent
