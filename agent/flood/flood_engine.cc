#include "agent/flood/flood_engine.h"

#include <dirent.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
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
// Attempts launched per pass of the loop before completions are reaped again (completions are
// timestamped when reaped, so a long launch burst would inflate the latencies of the first).
constexpr int kLaunchBatch = 32;
// Reads per readiness event on a held socket before re-arming (bounds a chatty peer).
constexpr int kMaxRecvsPerEvent = 16;
constexpr unsigned kWatchMask = POLLIN | POLLRDHUP | POLLERR | POLLHUP;
// A launch later than this after its due instant is late.
constexpr int64_t kLateNs = 1'000'000;
constexpr uint64_t kDefaultMaxRecords = 200'000;
constexpr uint32_t kNoRecord = std::numeric_limits<uint32_t>::max();
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

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

enum SlotState : uint8_t { kFree, kConnecting, kLiving, kClosing };
// Ops of the current generation still in the kernel (the ones to cancel), and what was seen.
enum SlotFlag : uint8_t {
  kConnectPending = 1,
  kPollPending = 2,
  kSendPending = 4,
  kAnswered = 8,
};

// One open socket of the ring: all the engine keeps per connection (no strings, no clock
// objects). A slot is recycled as soon as its attempt has an outcome, even if a completion is
// still on its way (the linked timeout's, a send's); the generation tells those apart from the
// completions of the slot's next occupant.
struct Slot {
  int64_t scheduled_ns = 0;  // due instant, from the schedule's start
  int32_t fd = -1;
  uint32_t generation = 0;
  uint32_t record = kNoRecord;  // index in result.connections when records are kept
  uint8_t state = kFree;
  uint8_t flags = 0;
};
static_assert(sizeof(Slot) <= 24, "the engine's per-socket state must stay small");

// Close deadlines of rst/fin: lifetimes are constant, so deadlines come in connect order and a
// FIFO is a timer queue. Entries of slots that ended early are skipped by their generation.
struct CloseDue {
  int64_t at_ns;
  uint32_t slot;
  uint32_t generation;
};

// Round-robin over source addresses and, per address, over its usable ports (port % stride ==
// offset within its ranges): the engine picks every (address, port) itself, so connect() never
// searches for a port.
class SourceRotation {
 public:
  explicit SourceRotation(const std::vector<SourcePorts>& sources) {
    for (const SourcePorts& s : sources) {
      Source& out = sources_.emplace_back();
      out.address = s.address;
      out.stride = std::max<uint32_t>(1, s.stride);
      out.offset = s.offset % out.stride;
      for (const PortRange& r : s.ranges) {
        const uint32_t first = FirstUsable(r, out.stride, out.offset);
        if (first > r.last) continue;
        out.ranges.push_back({first, r.last});
        out.usable += (r.last - first) / out.stride + 1;
      }
      if (!out.ranges.empty()) out.port = out.ranges[0].first;
      total_ += out.usable;
    }
  }

  // Usable ports over all addresses.
  uint64_t total() const { return total_; }

  // Binds `fd` (SO_REUSEADDR) to the next (address, port): 0 or an errno. A port someone else
  // holds (EADDRINUSE) is skipped; after a full cycle without success, EADDRNOTAVAIL.
  int Bind(int fd) {
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) return errno;
    for (uint64_t tries = 0; tries < total_;) {
      Source& s = sources_[next_++ % sources_.size()];
      if (s.usable == 0) continue;
      ++tries;
      common::SocketAddress address = s.address;
      address.set_port(static_cast<uint16_t>(s.port));
      Advance(s);
      if (::bind(fd, address.get(), address.length) == 0) return 0;
      if (errno != EADDRINUSE) return errno;
    }
    return EADDRNOTAVAIL;
  }

 private:
  struct Range {
    uint32_t first;  // first usable port
    uint32_t last;
  };
  struct Source {
    common::SocketAddress address;
    uint32_t stride = 1;
    uint32_t offset = 0;
    std::vector<Range> ranges;
    uint64_t usable = 0;
    size_t range = 0;  // cursor: the next port to use
    uint32_t port = 0;
  };

  static uint32_t FirstUsable(const PortRange& r, uint32_t stride, uint32_t offset) {
    const uint32_t first = r.first;
    return first + (offset + stride - first % stride) % stride;
  }
  static void Advance(Source& s) {
    s.port += s.stride;
    if (s.port > s.ranges[s.range].last) {
      s.range = (s.range + 1) % s.ranges.size();
      s.port = s.ranges[s.range].first;
    }
  }

  std::vector<Source> sources_;
  uint64_t total_ = 0;
  uint64_t next_ = 0;
};

class Flood {
 public:
  Flood(const FloodSpec& spec, std::optional<common::SocketAddress> source, flood::Uring ring,
        const std::atomic<bool>& stop, uint64_t expected_slots)
      : spec_(spec),
        target_(spec.target),
        source_(std::move(source)),
        remote_(spec.target.ToString()),
        payload_(spec.payload),
        connect_timeout_(ToKernelTimespec(spec.connect_timeout)),
        stop_(stop),
        schedule_(EffectiveProfile(spec)),
        unpaced_(schedule_.unpaced()),
        keep_(spec.close == CloseMode::kKeep),
        stride_(std::max<uint32_t>(1, spec.schedule_stride)),
        duration_ns_(spec.duration.count()),
        lifetime_ns_(spec.lifetime.count()),
        max_records_(
            spec.keep_records ? (spec.max_records > 0 ? spec.max_records : kDefaultMaxRecords) : 0),
        ring_(std::move(ring)) {
    result_.name = spec.name;
    result_.threads = 1;
    result_.workers = 1;
    slots_.reserve(std::min<uint64_t>(expected_slots, uint64_t{1} << 20));
    if (!spec.source_ports.empty()) {
      rotation_.emplace(spec.source_ports);
      for (const SourcePorts& s : spec.source_ports) NoteSource(s.address);
    } else if (source_) {
      NoteSource(*source_);
    }
  }

  FloodResult Run(SystemClock::time_point scheduled);

 private:
  int64_t Now() const { return (Clock::now() - anchor_).count(); }
  SystemClock::time_point ToSystem(int64_t ns) const {
    return anchor_system_ + std::chrono::duration_cast<SystemClock::duration>(nanoseconds(ns));
  }
  bool WaitForStart(SystemClock::time_point scheduled);
  bool HasRoom() const {
    return keep_ ? connecting_ < spec_.concurrency : connecting_ + living_ < spec_.concurrency;
  }

  void FirstAttempt();
  void NextAttempt();
  void LaunchDue(int64_t now);
  void Launch(int64_t scheduled_ns);
  void Drop(int64_t scheduled_ns);
  void CloseExpired(int64_t now);
  void BeginClose(uint32_t index);
  void CloseNow(uint32_t index);

  void WaitAndReap(int64_t timeout_ns);
  void Reap();
  void Dispatch(uint64_t user_data, int res);
  void OnConnect(uint32_t index, int res);
  void OnPoll(uint32_t index, int res);
  void OnSend(uint32_t index, int res);
  bool ArmPoll(uint32_t index);
  bool Send(uint32_t index);
  bool Cancel(uint64_t user_data);
  void Drain(Clock::time_point deadline);
  void Shutdown();

  uint32_t AllocateSlot();
  // Records the slot's outcome, closes its socket and recycles the slot.
  void Finish(uint32_t index, Outcome outcome, const std::string& error_name);
  void Release(uint32_t index);
  void Tally(int64_t scheduled_ns, uint32_t record, Outcome outcome, const std::string& error_name,
             int64_t after_ns);
  FloodSecond& SecondOf(int64_t scheduled_ns);
  uint32_t NewRecord(int64_t scheduled_ns);
  void Resolved() {
    ++resolved_;
    last_resolved_ns_ = Now();
  }
  void Opened() {
    int64_t open = ++own_open_;
    if (spec_.open_sockets) open = spec_.open_sockets->fetch_add(1) + 1;
    open_peak_ = std::max(open_peak_, open);
  }
  void Closed() {
    --own_open_;
    if (spec_.open_sockets) spec_.open_sockets->fetch_sub(1);
  }
  void NoteSource(const common::SocketAddress& address) {
    std::string host = address.HostString();
    if (std::find(result_.sources.begin(), result_.sources.end(), host) == result_.sources.end()) {
      result_.sources.push_back(std::move(host));
    }
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
  const RateSchedule schedule_;
  const bool unpaced_;
  const bool keep_;
  const uint32_t stride_;
  const int64_t duration_ns_;
  const int64_t lifetime_ns_;
  const uint64_t max_records_;
  std::optional<SourceRotation> rotation_;

  FloodResult result_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::deque<CloseDue> closes_;
  // The next attempt of this ring: its number in the whole flood and its due instant.
  uint64_t next_k_ = 0;
  int64_t next_due_ns_ = 0;
  bool launching_done_ = false;
  uint64_t resolved_ = 0;       // attempts whose connect has an outcome
  uint64_t connecting_ = 0;     // connects in flight
  uint64_t living_ = 0;         // established sockets open (being watched or closing)
  uint64_t ops_in_flight_ = 0;  // our SQEs submitted whose CQE has not been reaped
  int64_t own_open_ = 0;
  int64_t open_peak_ = 0;
  int64_t lag_max_ns_ = 0;
  bool first_local_noted_ = false;
  bool finishing_ = false;  // past the end: completions only drain
  // The schedule's start on the monotonic clock (may lie before the call's own start).
  Clock::time_point anchor_;
  SystemClock::time_point anchor_system_;
  int64_t last_resolved_ns_ = 0;

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

FloodResult Flood::Run(SystemClock::time_point scheduled) {
  if (!WaitForStart(scheduled)) {
    result_.started_at = SystemClock::now();
    return std::move(result_);
  }
  const Clock::time_point now = Clock::now();
  const SystemClock::time_point now_system = SystemClock::now();
  result_.started_at = now_system;
  // Anchored on the scheduled instant, not on when this call got there: a ring that starts late
  // finds its first attempts already due, and they count as late (open loop).
  const nanoseconds behind = std::max<nanoseconds>(
      nanoseconds{0}, std::chrono::duration_cast<nanoseconds>(now_system - scheduled));
  anchor_ = now - behind;
  anchor_system_ = now_system - std::chrono::duration_cast<SystemClock::duration>(behind);
  last_resolved_ns_ = Now();
  FirstAttempt();

  while (!stop_.load(std::memory_order_relaxed)) {
    int64_t t = Now();
    CloseExpired(t);
    LaunchDue(t);
    t = Now();

    int64_t deadline = t + kMaxWait.count();
    if (!launching_done_) {
      if (!unpaced_) {
        deadline = std::min(deadline, next_due_ns_);
      } else if (HasRoom()) {
        deadline = t;
      } else if (duration_ns_ > 0) {
        deadline = std::min(deadline, duration_ns_);
      }
    } else if (connecting_ == 0) {
      if (living_ == 0) break;  // nothing left to watch
      if (keep_) {
        const int64_t hold_end = last_resolved_ns_ + spec_.hold.count();
        if (t >= hold_end) break;
        deadline = std::min(deadline, hold_end);
      }
    }
    if (!closes_.empty()) deadline = std::min(deadline, closes_.front().at_ns);
    WaitAndReap(deadline - t);
  }
  Shutdown();
  result_.launch_lag_max = nanoseconds(lag_max_ns_);
  result_.open_peak = static_cast<uint64_t>(std::max<int64_t>(0, open_peak_));
  return std::move(result_);
}

void Flood::FirstAttempt() {
  next_k_ = spec_.schedule_offset;
  if (spec_.connections > 0 && next_k_ >= spec_.connections) {
    launching_done_ = true;
    return;
  }
  next_due_ns_ = unpaced_ ? 0 : schedule_.Due(next_k_).count();
  if (next_due_ns_ == kNever || (duration_ns_ > 0 && next_due_ns_ >= duration_ns_)) {
    launching_done_ = true;
  }
}

void Flood::NextAttempt() {
  next_k_ += stride_;
  if (spec_.connections > 0 && next_k_ >= spec_.connections) {
    launching_done_ = true;
    return;
  }
  if (unpaced_) return;  // bounded by duration on the clock instead (LaunchDue)
  next_due_ns_ = schedule_.Due(next_k_).count();
  if (next_due_ns_ == kNever || (duration_ns_ > 0 && next_due_ns_ >= duration_ns_)) {
    launching_done_ = true;
  }
}

void Flood::LaunchDue(int64_t now) {
  bool reaped = false;
  for (int launched = 0; !launching_done_ && launched < kLaunchBatch;) {
    if (unpaced_) {
      if (duration_ns_ > 0 && now >= duration_ns_) {
        launching_done_ = true;
        break;
      }
      if (!HasRoom()) break;  // closed loop: the next launch waits for room
      Launch(Now());
      ++launched;
      NextAttempt();
      continue;
    }
    if (next_due_ns_ > now) break;
    // Completions already in the CQ may free room: look before dropping.
    if (!HasRoom() && !reaped) {
      Reap();
      reaped = true;
    }
    if (HasRoom()) {
      Launch(next_due_ns_);
      ++launched;
    } else {
      Drop(next_due_ns_);
    }
    NextAttempt();
  }
}

FloodSecond& Flood::SecondOf(int64_t scheduled_ns) {
  const size_t second = static_cast<size_t>(std::max<int64_t>(0, scheduled_ns) / 1'000'000'000);
  while (result_.series.size() <= second) {
    const auto index = static_cast<uint32_t>(result_.series.size());
    result_.series.emplace_back().second = index;
  }
  return result_.series[second];
}

uint32_t Flood::NewRecord(int64_t scheduled_ns) {
  if (!spec_.keep_records) return kNoRecord;
  if (result_.connections.size() >= max_records_) {
    ++result_.records_dropped;
    return kNoRecord;
  }
  ConnectionRecord& record = result_.connections.emplace_back();
  record.remote = remote_;
  record.started_at = ToSystem(scheduled_ns);
  return static_cast<uint32_t>(result_.connections.size() - 1);
}

void Flood::Drop(int64_t scheduled_ns) {
  ++result_.launches_dropped;
  ++SecondOf(scheduled_ns).dropped;
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

void Flood::Launch(int64_t scheduled_ns) {
  ++result_.attempted;
  ++SecondOf(scheduled_ns).launched;
  if (!unpaced_) {
    const int64_t lag = Now() - scheduled_ns;
    if (lag > kLateNs) {
      ++result_.launches_late;
      ++SecondOf(scheduled_ns).late;
    }
    lag_max_ns_ = std::max(lag_max_ns_, lag);
  }
  const uint32_t record = NewRecord(scheduled_ns);
  auto fail = [&](int err) {
    const auto [outcome, name] = ClassifyConnectError(err);
    Tally(scheduled_ns, record, outcome, name, Now() - scheduled_ns);
    Resolved();
  };

  // socket() and bind() never block; the connect itself goes through the ring.
  const int fd = ::socket(target_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(errno);
  Opened();
  auto close_and_fail = [&](int err) {
    ::close(fd);
    Closed();
    fail(err);
  };
  if (rotation_) {
    if (const int err = rotation_->Bind(fd); err != 0) return close_and_fail(err);
  } else if (source_ && ::bind(fd, source_->get(), source_->length) != 0) {
    return close_and_fail(errno);
  }
  if (free_slots_.empty() && slots_.size() >= flood::kMaxSlots) return close_and_fail(ENOSPC);
  // CONNECT and its LINK_TIMEOUT must reach the kernel in the same submit.
  if (!ring_.Reserve(2)) return close_and_fail(EBUSY);

  const uint32_t index = AllocateSlot();
  Slot& slot = slots_[index];
  slot.fd = fd;
  slot.scheduled_ns = scheduled_ns;
  slot.record = record;
  slot.state = kConnecting;
  slot.flags = kConnectPending;

  io_uring_sqe* connect = io_uring_get_sqe(ring_.get());
  io_uring_prep_connect(connect, fd, target_.get(), target_.length);
  connect->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data64(connect, PackUserData(Op::kConnect, index, slot.generation));
  io_uring_sqe* timeout = io_uring_get_sqe(ring_.get());
  io_uring_prep_link_timeout(timeout, const_cast<__kernel_timespec*>(&connect_timeout_), 0);
  io_uring_sqe_set_data64(timeout, PackUserData(Op::kLinkTimeout, index, slot.generation));
  ops_in_flight_ += 2;
  ++connecting_;
}

void Flood::CloseExpired(int64_t now) {
  while (!closes_.empty() && closes_.front().at_ns <= now) {
    const CloseDue due = closes_.front();
    closes_.pop_front();
    const Slot& slot = slots_[due.slot];
    if (slot.generation == due.generation && slot.state == kLiving) BeginClose(due.slot);
  }
}

void Flood::BeginClose(uint32_t index) {
  Slot& slot = slots_[index];
  slot.state = kClosing;
  // A poll or send in flight holds its own reference to the socket's file: close() would only
  // drop ours, and the kernel would send nothing until that op ended. Cancel them first and
  // close when their completions are back (Dispatch).
  bool waiting = false;
  if ((slot.flags & kPollPending) != 0) {
    waiting = Cancel(PackUserData(Op::kPoll, index, slot.generation)) || waiting;
  }
  if ((slot.flags & kSendPending) != 0) {
    waiting = Cancel(PackUserData(Op::kSend, index, slot.generation)) || waiting;
  }
  if (!waiting) CloseNow(index);
}

void Flood::CloseNow(uint32_t index) {
  Slot& slot = slots_[index];
  if (spec_.close == CloseMode::kRst) {
    // SO_LINGER {on, 0}: close() aborts the connection with an RST and skips TIME_WAIT.
    const linger abort_on_close{1, 0};
    ::setsockopt(slot.fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  }
  Tally(slot.scheduled_ns, slot.record, Outcome::kEstablished, "", -1);
  ++result_.closed;
  Release(index);
}

void Flood::WaitAndReap(int64_t timeout_ns) {
  // A failed submit (-EBUSY while the CQ overflows) is retried on the next pass, after reaping.
  ring_.Submit();
  if (timeout_ns > 0) {
    __kernel_timespec ts = ToKernelTimespec(nanoseconds(timeout_ns));
    io_uring_cqe* cqe = nullptr;
    io_uring_wait_cqe_timeout(ring_.get(), &cqe, &ts);  // -ETIME / -EINTR: reap what is there
  }
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
  if (slot.generation != ud.generation || slot.state == kFree) return;
  if (slot.state == kClosing) {
    // Whatever the cancelled op reports, the socket is now ours alone once none is left.
    if (ud.op == Op::kPoll) slot.flags &= ~kPollPending;
    if (ud.op == Op::kSend) slot.flags &= ~kSendPending;
    if ((slot.flags & (kPollPending | kSendPending)) == 0) CloseNow(ud.slot);
    return;
  }
  switch (ud.op) {
    case Op::kConnect:
      if (slot.state == kConnecting) OnConnect(ud.slot, res);
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
  slot.flags &= ~kConnectPending;
  Resolved();
  if (slot.record != kNoRecord) {
    // After the connect resolved either way: autobind gave the socket its port.
    result_.connections[slot.record].local = LocalAddressString(slot.fd);
  }
  if (res < 0) {
    const auto [outcome, name] = ClassifyConnectError(-res);
    return Finish(index, outcome, name);
  }
  slot.state = kLiving;
  --connecting_;
  ++living_;
  const int64_t latency_ns = last_resolved_ns_ - slot.scheduled_ns;
  const auto latency_us = static_cast<uint64_t>(std::max<int64_t>(0, latency_ns) / 1000);
  result_.connect_latency_us.Record(latency_us);
  SecondOf(slot.scheduled_ns).connect_latency_us.Record(latency_us);
  if (slot.record != kNoRecord) {
    result_.connections[slot.record].connect_latency = nanoseconds(latency_ns);
  }
  if (!first_local_noted_ && !rotation_ && !source_) {
    // The kernel chose the address: note the first one seen (held sockets add theirs at the end).
    first_local_noted_ = true;
    if (absl::StatusOr<common::SocketAddress> local = common::LocalAddressOf(slot.fd); local.ok()) {
      NoteSource(*local);
    }
  }
  if (!keep_) {
    if (lifetime_ns_ == 0 && payload_.empty()) return CloseNow(index);
    closes_.push_back({last_resolved_ns_ + lifetime_ns_, index, slot.generation});
  }
  if (!payload_.empty() && !Send(index)) return Finish(index, Outcome::kError, ErrnoName(EBUSY));
  if (!ArmPoll(index)) return Finish(index, Outcome::kError, ErrnoName(EBUSY));
}

bool Flood::ArmPoll(uint32_t index) {
  Slot& slot = slots_[index];
  io_uring_sqe* sqe = ring_.GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_poll_add(sqe, slot.fd, kWatchMask);
  io_uring_sqe_set_data64(sqe, PackUserData(Op::kPoll, index, slot.generation));
  slot.flags |= kPollPending;
  ++ops_in_flight_;
  return true;
}

bool Flood::Send(uint32_t index) {
  Slot& slot = slots_[index];
  io_uring_sqe* sqe = ring_.GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_send(sqe, slot.fd, payload_.data(), payload_.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, PackUserData(Op::kSend, index, slot.generation));
  slot.flags |= kSendPending;
  ++ops_in_flight_;
  return true;
}

void Flood::OnSend(uint32_t index, int res) {
  Slot& slot = slots_[index];
  slot.flags &= ~kSendPending;
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
  slot.flags &= ~kPollPending;
  if (res < 0) return Finish(index, Outcome::kError, ErrnoName(-res));

  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (getsockopt(slot.fd, SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && so_error != 0) {
    const auto [outcome, name] = ClassifyHeldError(so_error);
    return Finish(index, outcome, name);
  }
  // Data is read and dropped rather than peeked: unread data would keep POLLIN raised and the
  // re-armed poll would complete at once, forever. An orderly close (FIN) is not a reset.
  char scratch[4096];
  for (int i = 0; i < kMaxRecvsPerEvent; ++i) {
    const ssize_t n = ::recv(slot.fd, scratch, sizeof(scratch), MSG_DONTWAIT);
    if (n > 0) {
      if ((slot.flags & kAnswered) == 0) {
        slot.flags |= kAnswered;
        ++result_.answered;
        ++SecondOf(slot.scheduled_ns).answered;
      }
      continue;
    }
    if (n == 0) {
      // The server closed first (an HTTP server answering with "Connection: close"). A churn
      // flood closes its end now: the connection was established and is over either way. A
      // held (keep) connection reports it as EOF, which the fate join reads as accepted.
      if (spec_.close != CloseMode::kKeep) return BeginClose(index);
      return Finish(index, Outcome::kError, "EOF");
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    const auto [outcome, name] = ClassifyHeldError(errno);
    return Finish(index, outcome, name);
  }
  if (!ArmPoll(index)) Finish(index, Outcome::kError, ErrnoName(EBUSY));
}

void Flood::Tally(int64_t scheduled_ns, uint32_t record, Outcome outcome,
                  const std::string& error_name, int64_t after_ns) {
  FloodSecond& second = SecondOf(scheduled_ns);
  switch (outcome) {
    case Outcome::kEstablished:
      ++result_.established;
      ++second.established;
      break;
    case Outcome::kReset:
      ++result_.reset;
      ++second.reset;
      break;
    case Outcome::kRefused:
      ++result_.refused;
      ++second.refused;
      break;
    case Outcome::kTimedOut:
      ++result_.timed_out;
      ++second.timed_out;
      break;
    case Outcome::kError:
      ++result_.errors[error_name];
      ++second.errors;
      break;
  }
  if (after_ns >= 0 && (outcome == Outcome::kReset || outcome == Outcome::kTimedOut)) {
    std::vector<uint32_t>& samples =
        outcome == Outcome::kReset ? result_.reset_after_us : result_.timed_out_after_us;
    if (samples.size() < FloodResult::kMaxOutcomeSamples) {
      samples.push_back(static_cast<uint32_t>(
          std::min<int64_t>(after_ns / 1000, std::numeric_limits<uint32_t>::max())));
    } else {
      ++result_.outcome_samples_dropped;
    }
  }
  if (record == kNoRecord) return;
  ConnectionRecord& r = result_.connections[record];
  r.outcome = outcome;
  r.error_name = outcome == Outcome::kError ? error_name : "";
  if (outcome != Outcome::kEstablished) r.outcome_after = nanoseconds(after_ns);
}

void Flood::Release(uint32_t index) {
  Slot& slot = slots_[index];
  if (slot.state == kConnecting) --connecting_;
  if (slot.state == kLiving || slot.state == kClosing) --living_;
  // Ops still in flight hold their own reference to the socket; their CQEs come back stale.
  ::close(slot.fd);
  Closed();
  slot.fd = -1;
  slot.state = kFree;
  slot.flags = 0;
  slot.record = kNoRecord;
  ++slot.generation;
  free_slots_.push_back(index);
}

void Flood::Finish(uint32_t index, Outcome outcome, const std::string& error_name) {
  const Slot& slot = slots_[index];
  Tally(slot.scheduled_ns, slot.record, outcome, error_name, Now() - slot.scheduled_ns);
  Release(index);
}

bool Flood::Cancel(uint64_t user_data) {
  io_uring_sqe* sqe = ring_.GetSqe();
  if (sqe == nullptr) {
    Reap();  // frees CQ space so the kernel takes the queued SQEs
    sqe = ring_.GetSqe();
    if (sqe == nullptr) return false;  // the ring's teardown cancels it instead
  }
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, PackUserData(Op::kCancel, 0, 0));
  ++ops_in_flight_;
  return true;
}

void Flood::Drain(Clock::time_point deadline) {
  while (ops_in_flight_ > 0) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      spdlog::warn("flood {}: {} io_uring ops still in flight at teardown", spec_.name,
                   ops_in_flight_);
      return;
    }
    WaitAndReap(std::min<nanoseconds>(deadline - now, kMaxWait).count());
  }
}

void Flood::Shutdown() {
  finishing_ = true;
  const int64_t end = Now();
  const bool stopped = stop_.load();
  // Cancel what the kernel still holds for live slots (held sockets' polls, and on stop the
  // connects; cancelling a connect also ends its linked timeout), and wait for every op to
  // complete so nothing in the kernel still points at our buffers when the ring goes away.
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = slots_[i];
    if (slot.state == kFree) continue;
    if ((slot.flags & kConnectPending) != 0) {
      Cancel(PackUserData(Op::kConnect, i, slot.generation));
    }
    if ((slot.flags & kPollPending) != 0) Cancel(PackUserData(Op::kPoll, i, slot.generation));
    if ((slot.flags & kSendPending) != 0) Cancel(PackUserData(Op::kSend, i, slot.generation));
  }
  Drain(Clock::now() + kDrainBudget);

  std::vector<common::UniqueFd>& held = *result_.held_sockets;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (slot.state == kFree) continue;
    if (slot.state == kConnecting) {
      if (slot.record != kNoRecord) {
        result_.connections[slot.record].local = LocalAddressString(slot.fd);
      }
      Tally(slot.scheduled_ns, slot.record, Outcome::kError, ErrnoName(ECANCELED),
            end - slot.scheduled_ns);
      Release(i);
    } else if (keep_ && !stopped) {
      Tally(slot.scheduled_ns, slot.record, Outcome::kEstablished, "", -1);
      held.emplace_back(std::exchange(slot.fd, -1));
      slot.state = kFree;
      --living_;
    } else if (keep_) {
      Tally(slot.scheduled_ns, slot.record, Outcome::kEstablished, "", -1);
      Release(i);
    } else {
      CloseNow(i);  // rst/fin: closed the way the flood closes, before its lifetime
    }
  }
  // The local address of each held socket, read once now: the fate join's key.
  for (const common::UniqueFd& fd : held) {
    absl::StatusOr<common::SocketAddress> local = common::LocalAddressOf(fd.get());
    if (!local.ok()) continue;
    std::string ip = local->HostString();
    auto group = std::find_if(result_.held.begin(), result_.held.end(),
                              [&ip](const HeldConnections& h) { return h.local_ip == ip; });
    if (group == result_.held.end()) {
      NoteSource(*local);
      group = result_.held.insert(result_.held.end(), HeldConnections{std::move(ip), remote_, {}});
    }
    group->local_ports.push_back(local->port());
  }
  connecting_ = 0;
  living_ = 0;
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
  if (!spec.source_ports.empty() && SourceRotation(spec.source_ports).total() == 0) {
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
  ASSIGN_OR_RETURN(flood::Uring ring, flood::Uring::Create(kSqEntries, kCqEntries));
  Flood flood(spec, std::move(source), std::move(ring), stop, sockets);
  return flood.Run(run_start + std::chrono::duration_cast<SystemClock::duration>(spec.start_after));
}

}  // namespace synq::agent
