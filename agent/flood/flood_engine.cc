#include "agent/flood/flood_engine.h"

#include <dirent.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "agent/flood/uring.h"
#include "agent/flood/user_data.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "spdlog/spdlog.h"

namespace synq::agent {
namespace {

using Clock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;
using std::chrono::nanoseconds;
using namespace std::chrono_literals;
using flood::Op;
using flood::PackUserData;

// The SQ is flushed whenever it fills, so it only bounds the batch size; the CQ is sized for the
// burst of completions at the end of a large hold (the kernel also keeps overflowed CQEs).
constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 16384;
// Longest single wait: how quickly `stop` is noticed.
constexpr nanoseconds kMaxWait = 50ms;
// How long to wait for cancelled ops to complete before tearing the ring down regardless.
constexpr nanoseconds kDrainBudget = 2s;
// Descriptors beyond the sockets: the ring, logging, whatever the process opens meanwhile.
constexpr uint64_t kFdMargin = 32;
// Completions handled per pass before going back to check `stop` and the launch schedule.
constexpr int kMaxCqesPerPass = 4096;
// Attempts launched per pass of the loop before completions are reaped again.
constexpr int kLaunchBatch = 16;
// Reads per readiness event on a held socket before re-arming (bounds a chatty peer).
constexpr int kMaxRecvsPerEvent = 16;
constexpr unsigned kWatchMask = POLLIN | POLLRDHUP | POLLERR | POLLHUP;

__kernel_timespec ToKernelTimespec(nanoseconds d) {
  d = std::max(d, nanoseconds{0});
  __kernel_timespec ts{};
  ts.tv_sec = d.count() / 1'000'000'000;
  ts.tv_nsec = d.count() % 1'000'000'000;
  return ts;
}

std::string LocalAddressString(int fd) {
  absl::StatusOr<common::SocketAddress> local = common::LocalAddressOf(fd);
  if (!local.ok() || local->port() == 0) return "";
  return local->ToString();
}

// Per-connection errors are measurements; this sorts one into its outcome.
std::pair<Outcome, std::string> ClassifyConnectError(int err) {
  switch (err) {
    case ECONNREFUSED:
      return {Outcome::kRefused, ""};
    // ECANCELED: the linked timeout cancelled the connect. ETIMEDOUT: tcp_syn_retries ran out.
    case ECANCELED:
    case ETIMEDOUT:
      return {Outcome::kTimedOut, ""};
    // The SYN-ACK came (an RST in SYN_SENT is ECONNREFUSED), then an RST beat the completion.
    case ECONNRESET:
      return {Outcome::kReset, ""};
    default:
      return {Outcome::kError, ErrnoName(err)};
  }
}

// An error on an established, held socket.
std::pair<Outcome, std::string> ClassifyHeldError(int err) {
  if (err == ECONNRESET) return {Outcome::kReset, ""};
  return {Outcome::kError, ErrnoName(err)};
}

enum class SlotState : uint8_t { kFree, kConnecting, kConnected };

// One socket in the ring. A slot is recycled as soon as its attempt has an outcome, even if a
// completion is still on its way (the linked timeout's, a send's); the generation tells those
// apart from the completions of the slot's next occupant.
struct Slot {
  uint32_t generation = 0;
  SlotState state = SlotState::kFree;
  common::UniqueFd fd;
  size_t attempt = 0;
  Clock::time_point started;
  // Ops of the current generation still in the kernel: the ones to cancel at the end.
  bool connect_pending = false;
  bool poll_pending = false;
  bool send_pending = false;
};

class Flood {
 public:
  Flood(const FloodSpec& spec, std::optional<common::SocketAddress> source, flood::Uring ring,
        const std::atomic<bool>& stop)
      : spec_(spec),
        target_(spec.target),
        source_(std::move(source)),
        remote_(spec.target.ToString()),
        payload_(spec.payload),
        connect_timeout_(ToKernelTimespec(spec.connect_timeout)),
        stop_(stop),
        ring_(std::move(ring)) {
    result_.name = spec.name;
  }

  FloodResult Run(SystemClock::time_point scheduled);

 private:
  bool WaitForStart(SystemClock::time_point scheduled);
  Clock::time_point DueAt(uint64_t attempt) const;
  SystemClock::time_point ToSystem(Clock::time_point t) const {
    return start_system_ + std::chrono::duration_cast<SystemClock::duration>(t - start_);
  }

  void Launch();
  void WaitAndReap(nanoseconds timeout);
  void Reap();
  void Dispatch(uint64_t user_data, int res);
  void OnConnect(uint32_t index, int res);
  void OnPoll(uint32_t index, int res);
  void OnSend(uint32_t index, int res);
  bool ArmPoll(uint32_t index);
  bool Send(uint32_t index);
  void Cancel(uint64_t user_data);
  void Drain(Clock::time_point deadline);
  void Shutdown();

  uint32_t AllocateSlot();
  // Records the slot's outcome, closes its socket and recycles it.
  void Finish(uint32_t index, Outcome outcome, const std::string& error_name);
  void Tally(ConnectionRecord& record, Outcome outcome, const std::string& error_name,
             nanoseconds after);
  void Resolved() {
    ++resolved_;
    last_resolved_ = Clock::now();
  }

  const FloodSpec& spec_;
  // Copies the kernel reads from while ops are in flight; declared before ring_ so they outlive
  // it (the ring is torn down first).
  const common::SocketAddress target_;
  const std::optional<common::SocketAddress> source_;
  const std::string remote_;
  const std::string payload_;
  const __kernel_timespec connect_timeout_;
  const std::atomic<bool>& stop_;

  FloodResult result_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  uint64_t launched_ = 0;
  uint64_t resolved_ = 0;       // attempts whose connect has an outcome
  uint64_t connecting_ = 0;     // connects in flight
  uint64_t held_ = 0;           // connected sockets being watched
  uint64_t ops_in_flight_ = 0;  // our SQEs submitted whose CQE has not been reaped
  bool finishing_ = false;      // past the end: completions only drain
  Clock::time_point start_;
  SystemClock::time_point start_system_;
  Clock::time_point last_resolved_;

  flood::Uring ring_;
};

bool Flood::WaitForStart(SystemClock::time_point scheduled) {
  // Absolute CLOCK_REALTIME sleeps so agents started at different times fire together; in
  // slices so that `stop` is still noticed while waiting for a far start.
  while (true) {
    if (stop_.load(std::memory_order_relaxed)) return false;
    const SystemClock::time_point now = SystemClock::now();
    if (now >= scheduled) return true;
    const auto target = std::chrono::duration_cast<nanoseconds>(
        std::min<SystemClock::time_point>(scheduled, now + kMaxWait).time_since_epoch());
    timespec ts{};
    ts.tv_sec = target.count() / 1'000'000'000;
    ts.tv_nsec = target.count() % 1'000'000'000;
    clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr);  // EINTR: just loop
  }
}

Clock::time_point Flood::DueAt(uint64_t attempt) const {
  if (spec_.rate <= 0) return start_;
  // Clamped so an absurdly slow rate cannot overflow the clock.
  const double seconds = std::min(static_cast<double>(attempt) / spec_.rate, 1e9);
  return start_ + std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(seconds));
}

FloodResult Flood::Run(SystemClock::time_point scheduled) {
  if (!WaitForStart(scheduled)) {
    result_.started_at = SystemClock::now();
    return std::move(result_);
  }
  start_ = Clock::now();
  start_system_ = SystemClock::now();
  last_resolved_ = start_;
  result_.started_at = start_system_;

  const uint64_t total = spec_.connections;
  while (!stop_.load(std::memory_order_relaxed)) {
    Clock::time_point now = Clock::now();
    // A bounded batch per pass: completions are timestamped when reaped, so a long launch burst
    // would inflate the latencies of the connects it started first.
    for (int i = 0; i < kLaunchBatch && launched_ < total && connecting_ < spec_.concurrency &&
                    DueAt(launched_) <= now;
         ++i) {
      Launch();
    }
    now = Clock::now();

    std::optional<Clock::time_point> hold_end;
    if (resolved_ == total) {
      if (held_ == 0) break;  // nothing left to watch
      hold_end = last_resolved_ + spec_.hold;
      if (now >= *hold_end) break;
    }
    Clock::time_point deadline = now + kMaxWait;
    if (launched_ < total && connecting_ < spec_.concurrency) {
      deadline = std::min(deadline, DueAt(launched_));
    }
    if (hold_end) deadline = std::min(deadline, *hold_end);
    WaitAndReap(deadline - now);
  }
  Shutdown();
  result_.attempted = launched_;
  return std::move(result_);
}

uint32_t Flood::AllocateSlot() {
  if (!free_slots_.empty()) {
    const uint32_t index = free_slots_.back();
    free_slots_.pop_back();
    return index;
  }
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

void Flood::Launch() {
  const uint64_t attempt = launched_++;
  const Clock::time_point started = Clock::now();
  {
    ConnectionRecord& record = result_.connections.emplace_back();
    record.remote = remote_;
    record.started_at = ToSystem(started);
  }
  auto fail = [&](int err) {
    const auto [outcome, name] = ClassifyConnectError(err);
    Tally(result_.connections[attempt], outcome, name, Clock::now() - started);
    Resolved();
  };

  // socket() and bind() never block; the connect itself goes through the ring.
  common::UniqueFd fd(::socket(target_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(errno);
  if (source_ && ::bind(fd.get(), source_->get(), source_->length) != 0) return fail(errno);
  if (free_slots_.empty() && slots_.size() >= flood::kMaxSlots) return fail(ENOSPC);
  // CONNECT and its LINK_TIMEOUT must reach the kernel in the same submit.
  if (!ring_.Reserve(2)) return fail(EBUSY);

  const uint32_t index = AllocateSlot();
  Slot& slot = slots_[index];
  slot.fd = std::move(fd);
  slot.attempt = attempt;
  slot.started = started;
  slot.state = SlotState::kConnecting;
  slot.connect_pending = true;

  io_uring_sqe* connect = io_uring_get_sqe(ring_.get());
  io_uring_prep_connect(connect, slot.fd.get(), target_.get(), target_.length);
  connect->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data64(connect, PackUserData(Op::kConnect, index, slot.generation));
  io_uring_sqe* timeout = io_uring_get_sqe(ring_.get());
  io_uring_prep_link_timeout(timeout, const_cast<__kernel_timespec*>(&connect_timeout_), 0);
  io_uring_sqe_set_data64(timeout, PackUserData(Op::kLinkTimeout, index, slot.generation));
  ops_in_flight_ += 2;
  ++connecting_;
}

void Flood::WaitAndReap(nanoseconds timeout) {
  // A failed submit (-EBUSY while the CQ overflows) is retried on the next pass, after reaping.
  ring_.Submit();
  __kernel_timespec ts = ToKernelTimespec(timeout);
  io_uring_cqe* cqe = nullptr;
  io_uring_wait_cqe_timeout(ring_.get(), &cqe, &ts);  // -ETIME / -EINTR: just reap what is there
  Reap();
}

void Flood::Reap() {
  for (int i = 0; i < kMaxCqesPerPass; ++i) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(ring_.get(), &cqe) != 0 || cqe == nullptr) return;
    const uint64_t user_data = cqe->user_data;
    const int res = cqe->res;
    io_uring_cqe_seen(ring_.get(), cqe);
    Dispatch(user_data, res);
  }
}

void Flood::Dispatch(uint64_t user_data, int res) {
  const flood::UserData ud = flood::UnpackUserData(user_data);
  if (!flood::IsFloodOp(ud.op)) return;
  --ops_in_flight_;
  if (finishing_) return;
  if (ud.slot >= slots_.size()) return;
  Slot& slot = slots_[ud.slot];
  // A completion for an earlier occupant of a recycled slot.
  if (slot.generation != ud.generation || slot.state == SlotState::kFree) return;
  switch (ud.op) {
    case Op::kConnect:
      if (slot.state == SlotState::kConnecting) OnConnect(ud.slot, res);
      break;
    case Op::kPoll:
      OnPoll(ud.slot, res);
      break;
    case Op::kSend:
      OnSend(ud.slot, res);
      break;
    case Op::kLinkTimeout:  // -ETIME when it fired; the connect's own CQE says what happened
    case Op::kCancel:
      break;
  }
}

void Flood::OnConnect(uint32_t index, int res) {
  Slot& slot = slots_[index];
  slot.connect_pending = false;
  --connecting_;
  Resolved();
  ConnectionRecord& record = result_.connections[slot.attempt];
  // After the connect resolved either way: autobind gave the socket its port.
  record.local = LocalAddressString(slot.fd.get());
  if (res < 0) {
    const auto [outcome, name] = ClassifyConnectError(-res);
    return Finish(index, outcome, name);
  }
  slot.state = SlotState::kConnected;
  ++held_;
  record.connect_latency = last_resolved_ - slot.started;
  result_.connect_latency_us.Record(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(record.connect_latency).count()));
  if (!payload_.empty() && !Send(index)) return Finish(index, Outcome::kError, ErrnoName(EBUSY));
  if (!ArmPoll(index)) return Finish(index, Outcome::kError, ErrnoName(EBUSY));
}

bool Flood::ArmPoll(uint32_t index) {
  Slot& slot = slots_[index];
  io_uring_sqe* sqe = ring_.GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_poll_add(sqe, slot.fd.get(), kWatchMask);
  io_uring_sqe_set_data64(sqe, PackUserData(Op::kPoll, index, slot.generation));
  slot.poll_pending = true;
  ++ops_in_flight_;
  return true;
}

bool Flood::Send(uint32_t index) {
  Slot& slot = slots_[index];
  io_uring_sqe* sqe = ring_.GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_send(sqe, slot.fd.get(), payload_.data(), payload_.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, PackUserData(Op::kSend, index, slot.generation));
  slot.send_pending = true;
  ++ops_in_flight_;
  return true;
}

void Flood::OnSend(uint32_t index, int res) {
  Slot& slot = slots_[index];
  slot.send_pending = false;
  if (res >= 0) {
    if (static_cast<size_t>(res) < payload_.size()) {
      SPDLOG_DEBUG("flood {}: short send {}/{}", spec_.name, res, payload_.size());
    }
    return;
  }
  // A send that fails on the RST consumes the socket error, so classify it here, not in OnPoll.
  const auto [outcome, name] = ClassifyHeldError(-res);
  Finish(index, outcome, name);
}

void Flood::OnPoll(uint32_t index, int res) {
  Slot& slot = slots_[index];
  slot.poll_pending = false;
  if (res < 0) return Finish(index, Outcome::kError, ErrnoName(-res));

  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (getsockopt(slot.fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && so_error != 0) {
    const auto [outcome, name] = ClassifyHeldError(so_error);
    return Finish(index, outcome, name);
  }
  // Data is read and dropped rather than peeked: unread data would keep POLLIN raised and the
  // re-armed poll would complete at once, forever. An orderly close (FIN) is not a reset.
  char scratch[4096];
  for (int i = 0; i < kMaxRecvsPerEvent; ++i) {
    const ssize_t n = ::recv(slot.fd.get(), scratch, sizeof(scratch), MSG_DONTWAIT);
    if (n > 0) continue;
    if (n == 0) return Finish(index, Outcome::kError, "EOF");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    const auto [outcome, name] = ClassifyHeldError(errno);
    return Finish(index, outcome, name);
  }
  if (!ArmPoll(index)) Finish(index, Outcome::kError, ErrnoName(EBUSY));
}

void Flood::Tally(ConnectionRecord& record, Outcome outcome, const std::string& error_name,
                  nanoseconds after) {
  record.outcome = outcome;
  record.error_name = outcome == Outcome::kError ? error_name : "";
  if (outcome != Outcome::kEstablished) record.outcome_after = after;
  switch (outcome) {
    case Outcome::kEstablished:
      ++result_.established;
      break;
    case Outcome::kReset:
      ++result_.reset;
      break;
    case Outcome::kRefused:
      ++result_.refused;
      break;
    case Outcome::kTimedOut:
      ++result_.timed_out;
      break;
    case Outcome::kError:
      ++result_.errors[error_name];
      break;
  }
}

void Flood::Finish(uint32_t index, Outcome outcome, const std::string& error_name) {
  Slot& slot = slots_[index];
  Tally(result_.connections[slot.attempt], outcome, error_name, Clock::now() - slot.started);
  if (slot.state == SlotState::kConnected) --held_;
  // Ops still in flight hold their own reference to the socket; their CQEs come back stale.
  slot.fd.Reset();
  slot.state = SlotState::kFree;
  slot.connect_pending = slot.poll_pending = slot.send_pending = false;
  ++slot.generation;
  free_slots_.push_back(index);
}

void Flood::Cancel(uint64_t user_data) {
  io_uring_sqe* sqe = ring_.GetSqe();
  if (sqe == nullptr) {
    Reap();  // frees CQ space so the kernel takes the queued SQEs
    sqe = ring_.GetSqe();
    if (sqe == nullptr) return;  // the ring's teardown cancels it instead
  }
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, PackUserData(Op::kCancel, 0, 0));
  ++ops_in_flight_;
}

void Flood::Drain(Clock::time_point deadline) {
  while (ops_in_flight_ > 0) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      spdlog::warn("flood {}: {} io_uring ops still in flight at teardown", spec_.name,
                   ops_in_flight_);
      return;
    }
    WaitAndReap(std::min<nanoseconds>(deadline - now, kMaxWait));
  }
}

void Flood::Shutdown() {
  finishing_ = true;
  const Clock::time_point end = Clock::now();
  // Cancel what the kernel still holds for live slots (held sockets' polls, and on stop the
  // connects; cancelling a connect also ends its linked timeout), and wait for every op to
  // complete so nothing in the kernel still points at our buffers when the ring goes away.
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = slots_[i];
    if (slot.state == SlotState::kFree) continue;
    if (slot.connect_pending) Cancel(PackUserData(Op::kConnect, i, slot.generation));
    if (slot.poll_pending) Cancel(PackUserData(Op::kPoll, i, slot.generation));
    if (slot.send_pending) Cancel(PackUserData(Op::kSend, i, slot.generation));
  }
  Drain(Clock::now() + kDrainBudget);

  for (Slot& slot : slots_) {
    if (slot.state == SlotState::kFree) continue;
    ConnectionRecord& record = result_.connections[slot.attempt];
    if (slot.state == SlotState::kConnected) {
      Tally(record, Outcome::kEstablished, "", nanoseconds{-1});
      if (!stop_.load()) result_.held_sockets->push_back(std::move(slot.fd));
    } else {
      record.local = LocalAddressString(slot.fd.get());
      Tally(record, Outcome::kError, ErrnoName(ECANCELED), end - slot.started);
    }
    slot.fd.Reset();
    slot.state = SlotState::kFree;
  }
  held_ = 0;
  connecting_ = 0;
}

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

}  // namespace

std::string ErrnoName(int err) {
  if (const char* name = strerrorname_np(err)) return name;
  return absl::StrCat("errno ", err);
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
  const std::string who = absl::StrCat("flood '", spec.name, "': ");
  if (spec.connections < 1) {
    return absl::InvalidArgumentError(absl::StrCat(who, "connections must be at least 1"));
  }
  if (spec.concurrency < 1) {
    return absl::InvalidArgumentError(absl::StrCat(who, "concurrency must be at least 1"));
  }
  if (!(spec.rate >= 0) || std::isinf(spec.rate)) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "rate must be a finite number >= 0 (0 = unpaced), got ", spec.rate));
  }
  if (spec.connect_timeout <= nanoseconds{0}) {
    return absl::InvalidArgumentError(absl::StrCat(who, "connect_timeout must be positive"));
  }
  if (spec.hold < nanoseconds{0}) {
    return absl::InvalidArgumentError(absl::StrCat(who, "hold must not be negative"));
  }
  if (spec.target.family() != AF_INET && spec.target.family() != AF_INET6) {
    return absl::InvalidArgumentError(absl::StrCat(who, "target must be an IPv4 or IPv6 address"));
  }
  if (!spec.source.empty()) {
    absl::StatusOr<common::SocketAddress> source = common::ParseHostAddress(spec.source, 0);
    if (!source.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(who, "source: ", source.status().message()));
    }
    if (source->family() != spec.target.family()) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, "source ", spec.source, " is not of the same address family as target ",
                       spec.target.ToString()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<FloodResult> RunFlood(const FloodSpec& spec,
                                     std::chrono::system_clock::time_point run_start,
                                     const std::atomic<bool>& stop) {
  RETURN_IF_ERROR(ValidateFloodSpec(spec));
  // Every connection may be held open at once.
  RETURN_IF_ERROR(EnsureFdBudget(spec.connections));
  std::optional<common::SocketAddress> source;
  if (!spec.source.empty()) {
    ASSIGN_OR_RETURN(source, common::ParseHostAddress(spec.source, 0));
  }
  ASSIGN_OR_RETURN(flood::Uring ring, flood::Uring::Create(kSqEntries, kCqEntries));
  Flood flood(spec, std::move(source), std::move(ring), stop);
  return flood.Run(run_start + std::chrono::duration_cast<SystemClock::duration>(spec.start_after));
}

}  // namespace synq::agent
