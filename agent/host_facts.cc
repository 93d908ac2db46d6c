#include "agent/host_facts.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>

#include "agent/flood/flood_engine.h"
#include "agent/kernel/sock_diag.h"
#include "agent/kernel/sysctl_settings.h"
#include "agent/shaping/shaper.h"
#include "agent/trace/drop_events.h"
#include "common/net_address.h"

namespace synq::agent {
namespace {

void Check(HostFacts& facts, Capability cap, bool ok, std::string why) {
  if (ok) {
    facts.capabilities.push_back(cap);
  } else {
    facts.missing.emplace_back(cap, std::move(why));
  }
}

// What is costly to probe and does not change while the agent runs: netem is probed by creating
// a qdisc in a throwaway network namespace, nfqueue by binding a queue. Probed once per process.
struct CostlyProbes {
  std::string uring;
  BackendSupport netem;
  BackendSupport nfqueue;
  std::string tracefs;
};

const CostlyProbes& Costly() {
  static const CostlyProbes probes = [] {
    CostlyProbes p;
    // The flood engine's own probe: the same answer as --flood-engine auto, with its reason
    // (seccomp, kernel.io_uring_disabled, ENOSYS, a missing opcode).
    const absl::Status uring = ProbeIoUring();
    p.uring = uring.ok() ? "" : std::string(uring.message());
    p.netem = ProbeNetem();
    p.nfqueue = ProbeNfqueue();
    p.tracefs = TracefsUnavailableReason();
    return p;
  }();
  return probes;
}

}  // namespace

void ProbeCostlyHostFactsOnce() { (void)Costly(); }

HostFacts ProbeHostFacts(const std::string& proc_sys_dir) {
  HostFacts facts;
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) == 0) facts.hostname = name;
  utsname uts{};
  if (uname(&uts) == 0) facts.kernel_release = uts.release;
  facts.settings = ReadSettings(proc_sys_dir);

  const CostlyProbes& costly = Costly();
  Check(facts, Capability::kIoUring, costly.uring.empty(), costly.uring);
  auto diag = DumpTcpSockets(0, 1u << 10 /* TCP_LISTEN */);
  Check(facts, Capability::kSockDiag, diag.ok(),
        diag.ok() ? "" : std::string(diag.status().message()));
  const bool root = geteuid() == 0;
  const std::string somaxconn = proc_sys_dir + "/net/core/somaxconn";
  Check(facts, Capability::kSysctlWrite, root && access(somaxconn.c_str(), W_OK) == 0,
        root ? somaxconn + " is not writable" : "the agent does not run as root");
  Check(facts, Capability::kNetem, costly.netem.available, costly.netem.reason);
  Check(facts, Capability::kNfqueue, costly.nfqueue.available, costly.nfqueue.reason);
  Check(facts, Capability::kPcap, root, "packet capture needs root (CAP_NET_RAW)");
  Check(facts, Capability::kTracefs, costly.tracefs.empty(), costly.tracefs);

  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
      const int family = i->ifa_addr->sa_family;
      if (family != AF_INET && family != AF_INET6) continue;
      common::SocketAddress addr;
      addr.length = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
      std::memcpy(&addr.storage, i->ifa_addr, addr.length);
      if (family == AF_INET6 &&
          IN6_IS_ADDR_LINKLOCAL(&reinterpret_cast<sockaddr_in6*>(&addr.storage)->sin6_addr)) {
        continue;
      }
      facts.addresses.push_back(addr.HostString());
    }
    freeifaddrs(list);
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    facts.fd_limit_soft = limit.rlim_cur;
    facts.fd_limit_hard = limit.rlim_max;
  }
  return facts;
}

}  // namespace synq::agent
