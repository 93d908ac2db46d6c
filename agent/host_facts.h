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

// Probes the host (in the calling thread's network namespace). Cheap enough to run per request:
// settings, addresses and limits are read each time; io_uring, netem (a qdisc in a throwaway
// network namespace), nfqueue and tracefs are probed once per process and remembered.
HostFacts ProbeHostFacts(const std::string& proc_sys_dir = "/proc/sys");

// Runs the once-per-process probes now (at agent start), so no GetHostInfo pays for them.
void ProbeCostlyHostFactsOnce();

}  // namespace synq::agent
