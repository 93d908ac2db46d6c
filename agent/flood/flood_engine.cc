#include "agent/flood/flood_engine.h"

#include <dirent.h>
#include <linux/io_uring.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/flood/epoll_flood.h"
#include "agent/flood/flood_core.h"
#include "agent/flood/uring.h"
#include "agent/flood/uring_flood.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "spdlog/spdlog.h"

namespace synq::agent {
namespace {

using SystemClock = std::chrono::system_clock;
using std::chrono::nanoseconds;
using namespace std::chrono_literals;

// Descriptors beyond the sockets: the ring, logging, whatever the process opens meanwhile.
constexpr uint64_t kFdMargin = 32;

// How many descriptors this process has open now (not counting the one used to look).
absl::StatusOr<uint64_t> CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return absl::ErrnoToStatus(errno, "opendir(/proc/self/fd)");
  uint64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count > 0 ? count - 1 : 0;
}

std::string LimitString(rlim_t limit) {
  return limit == RLIM_INFINITY ? std::string("unlimited") : absl::StrCat(limit);
}

// Attempts k < total with k % stride == offset.
uint64_t ShareOf(uint64_t total, uint32_t stride, uint32_t offset) {
  stride = std::max<uint32_t>(1, stride);
  if (total == std::numeric_limits<uint64_t>::max()) return total;
  return total > offset ? (total - offset - 1) / stride + 1 : 0;
}

absl::Status InvalidField(const FloodSpec& spec, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("flood '", spec.name, "': ", message));
}

absl::Status ValidateSourcePorts(const FloodSpec& spec) {
  for (size_t i = 0; i < spec.source_ports.size(); ++i) {
    const SourcePorts& s = spec.source_ports[i];
    const std::string field = absl::StrCat("source_ports[", i, "]");
    if (s.address.family() != spec.target.family()) {
      return InvalidField(spec, absl::StrCat(field, ".address ", s.address.HostString(),
                                             " is not of the target's address family (",
                                             spec.target.ToString(), ")"));
    }
    if (s.stride < 1 || s.offset >= s.stride) {
      return InvalidField(spec, absl::StrCat(field, ": offset ", s.offset, " must be below stride ",
                                             s.stride, " (stride >= 1)"));
    }
    for (size_t j = 0; j < s.ranges.size(); ++j) {
      if (s.ranges[j].first == 0 || s.ranges[j].first > s.ranges[j].last) {
        return InvalidField(
            spec, absl::StrCat(field, ".ranges[", j, "] ", s.ranges[j].first, "-", s.ranges[j].last,
                               " is not a port range (1 <= first <= last)"));
      }
    }
  }
  if (!spec.source_ports.empty() && flood::SourceRotation(spec.source_ports).total() == 0) {
    return InvalidField(spec, "source_ports hold no usable port (port % stride == offset)");
  }
  return absl::OkStatus();
}

}  // namespace

std::string ErrnoName(int err) {
  if (const char* name = strerrorname_np(err)) return name;
  return absl::StrCat("errno ", err);
}

RateProfile EffectiveProfile(const FloodSpec& spec) {
  RateProfile profile = spec.profile;
  if (profile.kind == RateProfile::Kind::kConstant && profile.rate == 0) profile.rate = spec.rate;
  return profile;
}

uint64_t ScheduledAttempts(const FloodSpec& spec) {
  uint64_t total = spec.connections > 0 ? spec.connections : std::numeric_limits<uint64_t>::max();
  if (spec.duration > nanoseconds{0}) {
    total = std::min(total, RateSchedule(EffectiveProfile(spec)).CountBefore(spec.duration));
  }
  return total;
}

absl::Status EnsureFdBudget(uint64_t needed) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::ErrnoToStatus(errno, "getrlimit(RLIMIT_NOFILE)");
  }
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    // An infinite hard limit cannot become the soft one (fs.nr_open caps it): keep the old soft.
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      limit = raised;
    } else {
      spdlog::warn("cannot raise RLIMIT_NOFILE from {} to {}: {}", LimitString(limit.rlim_cur),
                   LimitString(limit.rlim_max), std::strerror(errno));
    }
  }
  if (limit.rlim_cur == RLIM_INFINITY) return absl::OkStatus();

  absl::StatusOr<uint64_t> open = CountOpenFds();
  if (!open.ok()) {
    spdlog::warn("cannot count open descriptors ({}); assuming none", open.status().ToString());
    open = 0;
  }
  const uint64_t soft = limit.rlim_cur;
  const uint64_t used = *open + kFdMargin;
  if (used > soft || needed > soft - used) {
    return absl::FailedPreconditionError(
        absl::StrCat("flood needs ", needed, " sockets but RLIMIT_NOFILE is ", soft, " (hard ",
                     LimitString(limit.rlim_max), ") with ", *open,
                     " open; lower connections or raise the hard limit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateFloodSpec(const FloodSpec& spec) {
  if (spec.connections < 1 && spec.duration <= nanoseconds{0}) {
    return InvalidField(spec,
                        "connections or duration must be set: a flood needs a bound (connections "
                        ">= 1 attempts, or a duration > 0)");
  }
  if (spec.duration < nanoseconds{0}) {
    return InvalidField(
        spec, absl::StrCat("duration must not be negative, got ", spec.duration.count(), " ns"));
  }
  if (spec.concurrency < 1) return InvalidField(spec, "concurrency must be at least 1");
  if (!(spec.rate >= 0) || std::isinf(spec.rate)) {
    return InvalidField(
        spec, absl::StrCat("rate must be a finite number >= 0 (0 = unpaced), got ", spec.rate));
  }
  if (spec.rate > 0 && (spec.profile.kind != RateProfile::Kind::kConstant ||
                        (spec.profile.rate > 0 && spec.profile.rate != spec.rate))) {
    return InvalidField(spec, absl::StrCat("rate ", spec.rate,
                                           " conflicts with the rate profile: give one of rate, "
                                           "ramp, steps"));
  }
  RETURN_IF_ERROR(
      ValidateRateProfile(EffectiveProfile(spec), absl::StrCat("flood '", spec.name, "': ")));
  if (spec.connect_timeout <= nanoseconds{0}) {
    return InvalidField(spec, "connect_timeout must be positive");
  }
  if (spec.hold < nanoseconds{0}) return InvalidField(spec, "hold must not be negative");
  if (spec.lifetime < nanoseconds{0}) return InvalidField(spec, "lifetime must not be negative");
  if (spec.close == CloseMode::kKeep && spec.lifetime > nanoseconds{0}) {
    return InvalidField(spec,
                        "lifetime applies to close rst or fin; close keep holds every connection "
                        "to the end");
  }
  if (spec.close == CloseMode::kKeep && spec.connections < 1 &&
      RateSchedule(EffectiveProfile(spec)).unpaced()) {
    return InvalidField(spec,
                        "connections must be set for close keep at rate 0: every connection is "
                        "held, so the count needs a bound (or give a rate, or close rst/fin)");
  }
  if (spec.schedule_stride < 1 || spec.schedule_offset >= spec.schedule_stride) {
    return InvalidField(spec, absl::StrCat("schedule_offset ", spec.schedule_offset,
                                           " must be below schedule_stride ", spec.schedule_stride,
                                           " (stride >= 1)"));
  }
  if (spec.target.family() != AF_INET && spec.target.family() != AF_INET6) {
    return InvalidField(spec, "target must be an IPv4 or IPv6 address");
  }
  if (!spec.source.empty()) {
    absl::StatusOr<common::SocketAddress> source = common::ParseHostAddress(spec.source, 0);
    if (!source.ok())
      return InvalidField(spec, absl::StrCat("source: ", source.status().message()));
    if (source->family() != spec.target.family()) {
      return InvalidField(spec, absl::StrCat("source ", spec.source,
                                             " is not of the same address family as target ",
                                             spec.target.ToString()));
    }
  }
  return ValidateSourcePorts(spec);
}

absl::StatusOr<FloodResult> RunFlood(const FloodSpec& spec,
                                     std::chrono::system_clock::time_point run_start,
                                     const std::atomic<bool>& stop) {
  RETURN_IF_ERROR(ValidateFloodSpec(spec));
  // close keep may hold every connection of this ring's share at once; rst/fin at most
  // `concurrency` sockets.
  const uint64_t share =
      ShareOf(ScheduledAttempts(spec), spec.schedule_stride, spec.schedule_offset);
  const uint64_t sockets =
      spec.close == CloseMode::kKeep ? share : std::min<uint64_t>(share, spec.concurrency);
  RETURN_IF_ERROR(EnsureFdBudget(sockets));
  std::optional<common::SocketAddress> source;
  if (!spec.source.empty() && spec.source_ports.empty()) {
    ASSIGN_OR_RETURN(source, common::ParseHostAddress(spec.source, 0));
  }
  const SystemClock::time_point scheduled =
      run_start + std::chrono::duration_cast<SystemClock::duration>(spec.start_after);
  const FloodEngine engine =
      spec.engine == FloodEngine::kAuto ? ProcessFloodEngine().engine : spec.engine;
  if (engine == FloodEngine::kEpoll) {
    return flood::RunEpollFlood(spec, std::move(source), scheduled, stop, sockets);
  }
  return flood::RunUringFlood(spec, std::move(source), scheduled, stop, sockets);
}

absl::StatusOr<FloodEngine> ParseFloodEngine(absl::string_view name) {
  if (name == "auto") return FloodEngine::kAuto;
  if (name == "io_uring") return FloodEngine::kIoUring;
  if (name == "epoll") return FloodEngine::kEpoll;
  return absl::InvalidArgumentError(
      absl::StrCat("--flood-engine: '", name, "' is not one of auto, io_uring, epoll"));
}

const char* FloodEngineName(FloodEngine engine) {
  switch (engine) {
    case FloodEngine::kAuto:
      return "auto";
    case FloodEngine::kIoUring:
      return "io_uring";
    case FloodEngine::kEpoll:
      return "epoll";
  }
  return "auto";
}

absl::Status ProbeIoUring() {
  // The raw syscall first: its errno tells a seccomp filter or a sysctl (EPERM, EACCES) from a
  // kernel built without io_uring (ENOSYS), which liburing's status codes would merge.
  io_uring_params params{};
  const long fd = ::syscall(__NR_io_uring_setup, 1, &params);
  if (fd < 0) {
    const int err = errno;
    std::string why;
    int disabled = -1;
    if (FILE* f = std::fopen("/proc/sys/kernel/io_uring_disabled", "r")) {
      if (std::fscanf(f, "%d", &disabled) != 1) disabled = -1;
      std::fclose(f);
    }
    if (err == ENOSYS) {
      why = "this kernel has no io_uring (or a seccomp filter answers ENOSYS)";
    } else if (disabled == 2) {
      why = "kernel.io_uring_disabled is 2";
    } else if (disabled == 1 && err == EPERM) {
      why = "kernel.io_uring_disabled is 1 and this process is not in kernel.io_uring_group";
    } else if (err == EPERM || err == EACCES) {
      why = "refused by a seccomp filter (Docker 25+ and containerd 2.0 default profiles do this)";
    } else {
      why = "refused";
    }
    return absl::ErrnoToStatus(err, absl::StrCat("io_uring_setup: ", ErrnoName(err), ", ", why));
  }
  ::close(static_cast<int>(fd));
  // The opcodes a flood needs (Linux 5.6+ for IORING_OP_CONNECT).
  return flood::Uring::Create(8, 16).status();
}

absl::StatusOr<FloodEngineChoice> ChooseFloodEngine(FloodEngine asked) {
  if (asked == FloodEngine::kEpoll) {
    return FloodEngineChoice{FloodEngine::kEpoll, "chosen by --flood-engine epoll"};
  }
  const absl::Status io_uring = ProbeIoUring();
  if (io_uring.ok()) return FloodEngineChoice{FloodEngine::kIoUring, ""};
  if (asked == FloodEngine::kIoUring) {
    return absl::FailedPreconditionError(
        absl::StrCat("--flood-engine io_uring: io_uring is not usable here (", io_uring.message(),
                     "); use --flood-engine auto or epoll"));
  }
  return FloodEngineChoice{FloodEngine::kEpoll, std::string(io_uring.message())};
}

namespace {
ABSL_CONST_INIT absl::Mutex process_engine_mu(absl::kConstInit);
FloodEngineChoice& ProcessEngineLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(process_engine_mu) {
  static auto* choice = new FloodEngineChoice{FloodEngine::kIoUring, ""};
  return *choice;
}
}  // namespace

void SetProcessFloodEngine(FloodEngineChoice choice) {
  absl::MutexLock lock(&process_engine_mu);
  ProcessEngineLocked() = std::move(choice);
}

FloodEngineChoice ProcessFloodEngine() {
  absl::MutexLock lock(&process_engine_mu);
  return ProcessEngineLocked();
}

}  // namespace synq::agent
