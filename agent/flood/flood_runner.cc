#include "agent/flood/flood_runner.h"

#include <dirent.h>
#include <linux/rtnetlink.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/flood_merge.h"
#include "agent/flood/flood_worker.h"
#include "spdlog/spdlog.h"

namespace synq::agent {
namespace {

using std::chrono::duration;

// Slab footprint of one object: a slab of pages_per_slab pages holds objs_per_slab objects.
std::map<std::string, uint64_t> ReadSlabFootprints() {
  std::map<std::string, uint64_t> out;
  std::ifstream in("/proc/slabinfo");
  std::string line;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    // name active_objs num_objs objsize objperslab pagesperslab : ...
    uint64_t objsize = 0, per_slab = 0, pages = 0;
    if (f.size() < 6 || !absl::SimpleAtoi(f[3], &objsize) || !absl::SimpleAtoi(f[4], &per_slab) ||
        !absl::SimpleAtoi(f[5], &pages) || per_slab == 0) {
      continue;
    }
    out[f[0]] = std::max(objsize, pages * page / per_slab);
  }
  return out;
}

uint64_t CountOpenFds() {
  uint64_t n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
    n = n >= 3 ? n - 3 : 0;  // ".", ".." and the directory's own descriptor
  }
  return n;
}

double MaxRate(const FloodSpec& spec) {
  switch (spec.profile.kind) {
    case RateProfile::Kind::kRamp:
      return std::max(spec.profile.from, spec.profile.to);
    case RateProfile::Kind::kSteps:
      return spec.profile.steps.empty()
                 ? 0
                 : *std::max_element(spec.profile.steps.begin(), spec.profile.steps.end());
    case RateProfile::Kind::kConstant:
      break;
  }
  return std::max(spec.rate, spec.profile.rate);
}

// Attempts the profile launches in the first `d` of the schedule; infinity when unpaced.
double LaunchedWithin(const FloodSpec& spec, std::chrono::nanoseconds d) {
  const double t = duration<double>(d).count();
  const RateProfile& p = spec.profile;
  switch (p.kind) {
    case RateProfile::Kind::kRamp: {
      if (p.from <= 0 && p.to <= 0) return std::numeric_limits<double>::infinity();
      const double over = duration<double>(p.over).count();
      if (over <= 0) return p.to * t;
      if (t <= over) return p.from * t + (p.to - p.from) * t * t / (2 * over);
      return (p.from + p.to) / 2 * over + p.to * (t - over);
    }
    case RateProfile::Kind::kSteps: {
      if (p.steps.empty()) return std::numeric_limits<double>::infinity();
      const double each = duration<double>(p.each).count();
      double sum = 0, left = t;
      for (size_t i = 0; i < p.steps.size() && left > 0; ++i) {
        if (p.steps[i] <= 0) return std::numeric_limits<double>::infinity();
        const double span = (i + 1 == p.steps.size() || each <= 0) ? left : std::min(each, left);
        sum += p.steps[i] * span;
        left -= span;
      }
      return sum;
    }
    case RateProfile::Kind::kConstant:
      break;
  }
  const double rate = std::max(spec.rate, p.rate);
  if (rate <= 0) return std::numeric_limits<double>::infinity();
  return rate * t;
}

bool IsLoopback(const common::SocketAddress& a) {
  if (a.family() == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr) >> 24) == 127;
  }
  return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
}

std::string Plural(uint64_t n, const std::string& one, const std::string& many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

std::string Mib(uint64_t bytes) { return absl::StrCat(bytes / (1024 * 1024), " MiB"); }

}  // namespace

absl::StatusOr<HostBudget> ReadHostBudget(const std::string& proc_sys_dir) {
  HostBudget b;
  auto ports = ReadPortFacts(proc_sys_dir);
  if (!ports.ok()) return ports.status();
  b.ports = *std::move(ports);
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return absl::ErrnoToStatus(errno, "getrlimit");
  b.fd_hard_limit = limit.rlim_max == RLIM_INFINITY ? std::numeric_limits<uint32_t>::max()
                                                    : static_cast<uint64_t>(limit.rlim_max);
  b.fds_open = CountOpenFds();
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") b.mem_available = kib * 1024;
  }
  if (b.mem_available == 0) return absl::InternalError("/proc/meminfo: no MemAvailable");
  const std::map<std::string, uint64_t> slabs = ReadSlabFootprints();
  auto get = [&](const char* name) {
    auto it = slabs.find(name);
    return it == slabs.end() ? uint64_t{0} : it->second;
  };
  const uint64_t file_part = get("sock_inode_cache") + get("filp") + get("dentry");
  if (get("TCP") > 0 && file_part > 0) {
    b.socket_bytes_v4 = get("TCP") + file_part;
    b.socket_bytes_v6 = (get("TCPv6") > 0 ? get("TCPv6") : get("TCP")) + file_part;
    b.socket_bytes_source = absl::StrCat("/proc/slabinfo: TCP ", get("TCP"), " + sock_inode_cache ",
                                         get("sock_inode_cache"), " + filp ", get("filp"),
                                         " + dentry ", get("dentry"), " bytes");
  } else {
    b.socket_bytes_v4 = b.socket_bytes_v6 = 4096;
    b.socket_bytes_source = "assumed 4096 bytes (/proc/slabinfo unreadable)";
  }
  b.cores = std::max(1u, std::thread::hardware_concurrency());
  return b;
}

uint64_t AttemptBound(const FloodSpec& spec) {
  uint64_t bound = spec.connections;  // 0 = no cap
  if (spec.duration > std::chrono::nanoseconds::zero()) {
    const double launched = LaunchedWithin(spec, spec.duration);
    // Below 2^63: a larger count is no bound at all (and its cast would be undefined).
    if (std::isfinite(launched) && launched < 9.2e18) {
      const auto by_time = static_cast<uint64_t>(std::ceil(launched));
      bound = bound == 0 ? by_time : std::min(bound, by_time);
    }
  }
  return bound;
}

absl::StatusOr<std::vector<FloodPlan>> PlanFloods(const std::vector<FloodSpec>& floods,
                                                  const HostBudget& budget) {
  const std::vector<PortRange> usable =
      UsablePorts(budget.ports.local_range, budget.ports.reserved);
  const uint64_t usable_count = CountPorts(usable);
  std::vector<FloodPlan> plans;
  for (const FloodSpec& spec : floods) {
    FloodPlan plan;
    plan.spec = spec;
    plan.attempts = AttemptBound(spec);
    if (plan.attempts == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "floods.", spec.name, ": nothing bounds its attempts; set connections, or a duration ",
          "with a rate"));
    }
    auto sources = ResolveSources(spec);
    if (!sources.ok()) return sources.status();
    auto ports = PlanSourcePorts(*sources, usable);
    if (!ports.ok()) return ports.status();
    plan.spec.sources = *sources;
    plan.spec.source_ports = *std::move(ports);
    const uint64_t concurrency = std::max<uint64_t>(spec.concurrency, 1);
    switch (spec.close) {
      case CloseMode::kKeep:
        plan.sockets = plan.attempts;
        plan.ports_needed = plan.attempts;
        break;
      case CloseMode::kRst:
        plan.sockets = std::min(plan.attempts, concurrency);
        plan.ports_needed = plan.sockets;
        break;
      case CloseMode::kFin: {
        plan.sockets = std::min(plan.attempts, concurrency);
        const bool reuse =
            budget.ports.tw_reuse == 1 || (budget.ports.tw_reuse == 2 && IsLoopback(spec.target));
        const double rate = MaxRate(spec);
        uint64_t time_wait = 0;
        if (!reuse) {
          time_wait =
              rate > 0 ? static_cast<uint64_t>(std::ceil(rate * kTimeWaitSeconds)) : plan.attempts;
        }
        plan.ports_needed = std::min(plan.attempts, plan.sockets + time_wait);
        break;
      }
    }
    plans.push_back(std::move(plan));
  }

  // Floods towards one target that use one source address split its ports between them.
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> users;  // (target, source)
  for (size_t i = 0; i < plans.size(); ++i) {
    for (const std::string& s : plans[i].spec.sources) {
      users[{plans[i].spec.target.ToString(), s}].push_back(i);
    }
  }
  for (FloodPlan& plan : plans) {
    std::vector<std::string> shared_with;
    for (SourcePorts& p : plan.spec.source_ports) {
      const std::vector<size_t>& who = users[{plan.spec.target.ToString(), p.address.HostString()}];
      if (who.size() > 1) {
        const size_t me = static_cast<size_t>(
            std::find_if(who.begin(), who.end(), [&](size_t i) { return &plans[i] == &plan; }) -
            who.begin());
        const uint32_t s = std::max<uint32_t>(p.stride, 1);
        p.offset += s * static_cast<uint32_t>(me);
        p.stride = s * static_cast<uint32_t>(who.size());
        for (size_t i : who) {
          if (&plans[i] != &plan && std::find(shared_with.begin(), shared_with.end(),
                                              plans[i].spec.name) == shared_with.end()) {
            shared_with.push_back(plans[i].spec.name);
          }
        }
      }
      plan.ports_available += CountPorts(p);
    }
    if (plan.ports_needed > plan.ports_available) {
      const uint64_t n = plan.spec.source_ports.size();
      std::string why = absl::StrCat("flood '", plan.spec.name, "' needs ", plan.ports_needed,
                                     " source ports towards ", plan.spec.target.ToString());
      if (plan.spec.close == CloseMode::kFin && plan.ports_needed > plan.sockets) {
        absl::StrAppend(&why, " (", plan.sockets, " open + ", plan.ports_needed - plan.sockets,
                        " in TIME_WAIT for ", kTimeWaitSeconds, " s at ", MaxRate(plan.spec),
                        "/s; net.ipv4.tcp_tw_reuse is ", budget.ports.tw_reuse, ")");
      }
      absl::StrAppend(&why, " but ", Plural(n, "source address", "source addresses"), " (",
                      absl::StrJoin(plan.spec.sources, ", "), ") x ", usable_count,
                      " usable ports");
      if (!shared_with.empty()) {
        absl::StrAppend(&why, ", shared with flood(s) ", absl::StrJoin(shared_with, ", "),
                        " towards the same target,");
      }
      absl::StrAppend(&why, " = ", plan.ports_available,
                      "; add sources (hosts.client.addresses / sources:) or widen "
                      "net.ipv4.ip_local_port_range (now ",
                      budget.ports.local_range.first, "-", budget.ports.local_range.last);
      if (!budget.ports.reserved.empty()) {
        absl::StrAppend(&why, ", less ", CountPorts(budget.ports.reserved),
                        " in net.ipv4.ip_local_reserved_ports");
      }
      absl::StrAppend(&why, ")");
      if (plan.spec.close == CloseMode::kKeep) {
        absl::StrAppend(&why, ", or lower connections");
      } else {
        absl::StrAppend(&why, ", or lower concurrency");
      }
      return absl::FailedPreconditionError(why);
    }
  }

  // Descriptors: floods run in this process while they fit; the rest go to worker processes.
  const uint64_t here_limit = budget.fd_hard_limit > budget.fds_open + kFdMargin
                                  ? budget.fd_hard_limit - budget.fds_open - kFdMargin
                                  : 0;
  const uint64_t per_worker =
      budget.fd_hard_limit > kFdMargin ? budget.fd_hard_limit - kFdMargin : 0;
  uint64_t here_left = here_limit;
  uint64_t workers_total = 0;
  for (FloodPlan& plan : plans) {
    if (plan.sockets <= here_left) {
      here_left -= plan.sockets;
      plan.workers = 0;
    } else {
      if (per_worker == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("flood '", plan.spec.name, "' needs ", plan.sockets,
                         " sockets but RLIMIT_NOFILE's hard limit is ", budget.fd_hard_limit));
      }
      plan.workers = static_cast<uint32_t>((plan.sockets + per_worker - 1) / per_worker);
      workers_total += plan.workers;
      if (plan.workers > std::max<uint32_t>(plan.spec.concurrency, 1)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "flood '", plan.spec.name, "' needs ", plan.workers, " worker processes (",
            plan.sockets, " sockets, ", per_worker, " per process) but its concurrency is ",
            plan.spec.concurrency, "; raise concurrency to at least ", plan.workers));
      }
    }
    const uint32_t processes = std::max<uint32_t>(plan.workers, 1);
    const uint32_t per_process_concurrency =
        std::max<uint32_t>(plan.spec.concurrency / processes, 1);
    uint32_t threads = plan.spec.threads;
    if (threads == 0) {
      // A ring launches tens of thousands of connects a second (docs/performance.md), and
      // every ring is one more thread woken at the start instant: a ring per kAttemptsPerRing
      // attempts of this process's share, up to the cores.
      threads = budget.cores;
      if (plan.attempts > 0) {
        const uint64_t share = (plan.attempts + processes - 1) / processes;
        threads = static_cast<uint32_t>(std::min<uint64_t>(
            threads, std::max<uint64_t>(1, (share + kAttemptsPerRing - 1) / kAttemptsPerRing)));
      }
    }
    plan.threads = std::max<uint32_t>(1, std::min(threads, per_process_concurrency));
  }
  if (workers_total > budget.max_workers) {
    uint64_t sockets = 0;
    for (const FloodPlan& p : plans) sockets += p.sockets;
    return absl::FailedPreconditionError(absl::StrCat(
        "the floods of this host need ", sockets, " sockets open at once: ", workers_total,
        " worker processes of at most ", per_worker, " (RLIMIT_NOFILE hard limit ",
        budget.fd_hard_limit, " less ", kFdMargin, ") besides ", here_limit,
        " in the agent, but at most ", budget.max_workers,
        " workers are allowed; raise the agent's hard RLIMIT_NOFILE (LimitNOFILE=, ulimit -Hn, up "
        "to fs.nr_open) or lower connections"));
  }

  // Kernel memory: every socket's slab objects, twice when the target is on this host.
  uint64_t need = 0;
  std::vector<std::string> parts;
  for (FloodPlan& plan : plans) {
    const uint64_t per =
        plan.spec.target.family() == AF_INET6 ? budget.socket_bytes_v6 : budget.socket_bytes_v4;
    auto route = LookupRoute(plan.spec.target);
    const bool local = route.ok() && route->type == RTN_LOCAL;
    plan.kernel_bytes = plan.sockets * per * (local ? 2 : 1);
    need += plan.kernel_bytes;
    parts.push_back(absl::StrCat("'", plan.spec.name, "' ", plan.sockets, " sockets x ", per,
                                 " bytes", local ? " x 2 (both ends on this host)" : ""));
  }
  // Leave a tenth of what is available for everything else the host does meanwhile.
  if (need > budget.mem_available / 10 * 9) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the floods of this host need ", Mib(need), " of kernel memory for their sockets (",
        absl::StrJoin(parts, ", "), "; per socket ", budget.socket_bytes_source,
        ") but MemAvailable is ", Mib(budget.mem_available),
        " (90% usable); lower connections or concurrency, or add memory"));
  }
  for (const FloodPlan& plan : plans) {
    spdlog::info(
        "flood {}: {} attempts at most, {} sockets at once, {} of {} source ports, sources {}, "
        "{} ring(s){}",
        plan.spec.name, plan.attempts, plan.sockets, plan.ports_needed, plan.ports_available,
        absl::StrJoin(plan.spec.sources, ","), plan.threads,
        plan.workers > 0 ? absl::StrCat(" in each of ", plan.workers, " worker processes") : "");
  }
  return plans;
}

absl::StatusOr<FloodResult> RunFloodThreads(const FloodSpec& spec, uint32_t threads,
                                            std::chrono::system_clock::time_point run_start,
                                            const std::atomic<bool>& stop) {
  threads = std::max<uint32_t>(threads, 1);
  auto open =
      spec.open_sockets != nullptr ? spec.open_sockets : std::make_shared<std::atomic<int64_t>>(0);
  std::vector<absl::StatusOr<FloodResult>> results(threads, absl::UnknownError("not run"));
  std::vector<std::thread> rings;
  for (uint32_t i = 0; i < threads; ++i) {
    FloodSpec share = ShareOf(spec, threads, i);
    share.open_sockets = open;
    rings.emplace_back([&results, i, share = std::move(share), run_start, &stop] {
      results[i] = RunFlood(share, run_start, stop);
    });
  }
  for (auto& t : rings) t.join();
  std::vector<FloodResult> parts;
  std::vector<std::string> errors;
  for (uint32_t i = 0; i < threads; ++i) {
    if (results[i].ok()) {
      parts.push_back(*std::move(results[i]));
    } else {
      errors.push_back(
          absl::StrCat("ring ", i + 1, " of ", threads, ": ", results[i].status().message()));
    }
  }
  if (!errors.empty()) {
    return absl::Status(results[0].ok() ? absl::StatusCode::kInternal : results[0].status().code(),
                        absl::StrJoin(errors, "; "));
  }
  auto merged = MergeFloodResults(std::move(parts), PeakMerge::kMax);
  if (!merged.ok()) return merged.status();
  merged->threads = threads;
  merged->workers = 1;
  return merged;
}

absl::StatusOr<FloodResult> RunPlannedFlood(const FloodPlan& plan,
                                            std::chrono::system_clock::time_point run_start,
                                            const std::atomic<bool>& stop,
                                            const RunnerOptions& options) {
  if (plan.workers == 0) return RunFloodThreads(plan.spec, plan.threads, run_start, stop);
  return RunFloodWorkers(plan.spec, plan.workers, plan.threads, plan.attempts, run_start, stop,
                         options.worker_binary);
}

}  // namespace synq::agent
