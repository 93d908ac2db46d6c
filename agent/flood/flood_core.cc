#include "agent/flood/flood_core.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "agent/flood/flood_engine.h"
#include "agent/flood/user_data.h"
#include "spdlog/spdlog.h"

namespace synq::agent::flood {
namespace {

using std::chrono::nanoseconds;

// A launch later than this after its due instant is late.
constexpr int64_t kLateNs = 1'000'000;
constexpr uint64_t kDefaultMaxRecords = 200'000;

uint32_t FirstUsable(const PortRange& r, uint32_t stride, uint32_t offset) {
  const uint32_t first = r.first;
  return first + (offset + stride - first % stride) % stride;
}

}  // namespace

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

SourceRotation::SourceRotation(const std::vector<SourcePorts>& sources) {
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

int SourceRotation::Bind(int fd) {
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

void SourceRotation::Advance(Source& s) {
  s.port += s.stride;
  if (s.port > s.ranges[s.range].last) {
    s.range = (s.range + 1) % s.ranges.size();
    s.port = s.ranges[s.range].first;
  }
}

FloodCore::FloodCore(const FloodSpec& spec, std::optional<common::SocketAddress> source,
                     const std::atomic<bool>& stop, uint64_t expected_slots,
                     const char* engine_name)
    : spec_(spec),
      target_(spec.target),
      source_(std::move(source)),
      remote_(spec.target.ToString()),
      payload_(spec.payload),
      stop_(stop),
      schedule_(EffectiveProfile(spec)),
      unpaced_(schedule_.unpaced()),
      keep_(spec.close == CloseMode::kKeep),
      stride_(std::max<uint32_t>(1, spec.schedule_stride)),
      duration_ns_(spec.duration.count()),
      lifetime_ns_(spec.lifetime.count()),
      max_records_(
          spec.keep_records ? (spec.max_records > 0 ? spec.max_records : kDefaultMaxRecords) : 0) {
  result_.name = spec.name;
  result_.engine = engine_name;
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

void FloodCore::Opened() {
  int64_t open = ++own_open_;
  if (spec_.open_sockets) open = spec_.open_sockets->fetch_add(1) + 1;
  open_peak_ = std::max(open_peak_, open);
}

void FloodCore::Closed() {
  --own_open_;
  if (spec_.open_sockets) spec_.open_sockets->fetch_sub(1);
}

void FloodCore::NoteSource(const common::SocketAddress& address) {
  std::string host = address.HostString();
  if (std::find(result_.sources.begin(), result_.sources.end(), host) == result_.sources.end()) {
    result_.sources.push_back(std::move(host));
  }
}

bool FloodCore::WaitForStart(SystemClock::time_point scheduled) {
  // The thread's timer slack (50 us by default) lets the kernel fire a sleep that much late; the
  // wait for the instant runs with the least slack, and the thread gets its own back after.
  const int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
  const bool started = WaitUntil(scheduled);
  if (slack > 0) prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0);
  return started;
}

bool FloodCore::WaitUntil(SystemClock::time_point scheduled) {
  // Absolute sleeps on CLOCK_REALTIME (the clock start_at is expressed in) so agents started at
  // different times fire together; in slices so that `stop` is still noticed while waiting for a
  // far start.
  const SystemClock::time_point wake = scheduled - kStartSpin;
  while (true) {
    if (stop_.load(std::memory_order_relaxed)) return false;
    const SystemClock::time_point now = SystemClock::now();
    if (now >= wake) break;
    const auto target = std::chrono::duration_cast<nanoseconds>(
        std::min<SystemClock::time_point>(wake, now + kMaxWait).time_since_epoch());
    timespec ts{};
    ts.tv_sec = target.count() / 1'000'000'000;
    ts.tv_nsec = target.count() % 1'000'000'000;
    clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr);  // EINTR: just loop
  }
  while (SystemClock::now() < scheduled) {
  }
  return true;
}

void FloodCore::PrepareSockets() {
  uint64_t n = std::min<uint64_t>(kPreparedSockets, std::max<uint32_t>(spec_.concurrency, 1));
  if (spec_.connections > 0) {
    const uint64_t first = spec_.schedule_offset;
    n = std::min<uint64_t>(
        n, spec_.connections > first ? (spec_.connections - first + stride_ - 1) / stride_ : 0);
  }
  prepared_.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    const int fd = ::socket(target_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    int err = 0;
    if (rotation_) {
      err = rotation_->Bind(fd);
    } else if (source_ && ::bind(fd, source_->get(), source_->length) != 0) {
      err = errno;
    }
    if (err != 0) {
      ::close(fd);
      return;
    }
    prepared_.push_back(fd);
  }
}

void FloodCore::ClosePrepared() {
  for (size_t i = prepared_next_; i < prepared_.size(); ++i) ::close(prepared_[i]);
  prepared_.clear();
  prepared_next_ = 0;
}

FloodResult FloodCore::Run(SystemClock::time_point scheduled) {
  PrepareSockets();
  if (!WaitForStart(scheduled)) {
    ClosePrepared();
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
    ExpireIo(t);
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
    deadline = std::min(deadline, NextIoDeadline());
    WaitAndReap(deadline - t);
  }
  Shutdown();
  result_.launch_lag_max = nanoseconds(lag_max_ns_);
  result_.open_peak = static_cast<uint64_t>(std::max<int64_t>(0, open_peak_));
  return std::move(result_);
}

void FloodCore::FirstAttempt() {
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

void FloodCore::NextAttempt() {
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

void FloodCore::LaunchDue(int64_t now) {
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
      ReapReady();
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

FloodSecond& FloodCore::SecondOf(int64_t scheduled_ns) {
  const size_t second = static_cast<size_t>(std::max<int64_t>(0, scheduled_ns) / 1'000'000'000);
  while (result_.series.size() <= second) {
    const auto index = static_cast<uint32_t>(result_.series.size());
    result_.series.emplace_back().second = index;
  }
  return result_.series[second];
}

uint32_t FloodCore::NewRecord(int64_t scheduled_ns) {
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

void FloodCore::Drop(int64_t scheduled_ns) {
  ++result_.launches_dropped;
  ++SecondOf(scheduled_ns).dropped;
}

uint32_t FloodCore::AllocateSlot() {
  if (!free_slots_.empty()) {
    const uint32_t index = free_slots_.back();
    free_slots_.pop_back();
    return index;
  }
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

void FloodCore::Launch(int64_t scheduled_ns) {
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

  // socket() and bind() never block; the connect itself goes through the ring. The first
  // launches take the sockets PrepareSockets opened and bound before the instant.
  const bool prepared = prepared_next_ < prepared_.size();
  const int fd = prepared
                     ? prepared_[prepared_next_++]
                     : ::socket(target_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(errno);
  Opened();
  auto close_and_fail = [&](int err) {
    ::close(fd);
    Closed();
    fail(err);
  };
  if (!prepared && rotation_) {
    if (const int err = rotation_->Bind(fd); err != 0) return close_and_fail(err);
  } else if (!prepared && source_ && ::bind(fd, source_->get(), source_->length) != 0) {
    return close_and_fail(errno);
  }
  if (free_slots_.empty() && slots_.size() >= kMaxSlots) return close_and_fail(ENOSPC);

  const uint32_t index = AllocateSlot();
  Slot& slot = slots_[index];
  slot.fd = fd;
  slot.scheduled_ns = scheduled_ns;
  slot.record = record;
  slot.state = kConnecting;
  slot.flags = 0;
  ++connecting_;
  StartConnect(index);
}

void FloodCore::CloseExpired(int64_t now) {
  while (!closes_.empty() && closes_.front().at_ns <= now) {
    const SlotDeadline due = closes_.front();
    closes_.pop_front();
    const Slot& slot = slots_[due.slot];
    if (slot.generation == due.generation && slot.state == kLiving) BeginClose(due.slot);
  }
}

void FloodCore::BeginClose(uint32_t index) {
  slots_[index].state = kClosing;
  if (!PrepareClose(index)) CloseNow(index);
}

void FloodCore::CloseNow(uint32_t index) {
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

void FloodCore::OnConnect(uint32_t index, int res) {
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
  StartWatching(index);
}

void FloodCore::OnConnectTimedOut(uint32_t index) {
  Slot& slot = slots_[index];
  Resolved();
  if (slot.record != kNoRecord)
    result_.connections[slot.record].local = LocalAddressString(slot.fd);
  const auto [outcome, name] = ClassifyConnectError(ECANCELED);
  Finish(index, outcome, name);
}

void FloodCore::OnSendResult(uint32_t index, int res) {
  if (res >= 0) {
    if (static_cast<size_t>(res) < payload_.size()) {
      SPDLOG_DEBUG("flood {}: short send {}/{}", spec_.name, res, payload_.size());
    }
    return;
  }
  // A send that fails on the RST consumes the socket error, so classify it here, not on reading.
  const auto [outcome, name] = ClassifyHeldError(-res);
  Finish(index, outcome, name);
}

bool FloodCore::OnReadable(uint32_t index) {
  Slot& slot = slots_[index];
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (getsockopt(slot.fd, SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && so_error != 0) {
    const auto [outcome, name] = ClassifyHeldError(so_error);
    Finish(index, outcome, name);
    return false;
  }
  // Data is read and dropped rather than peeked: unread data would keep the socket readable and
  // the next wait would return at once, forever. An orderly close (FIN) is not a reset.
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
      if (spec_.close != CloseMode::kKeep) {
        BeginClose(index);
      } else {
        Finish(index, Outcome::kError, "EOF");
      }
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    const auto [outcome, name] = ClassifyHeldError(errno);
    Finish(index, outcome, name);
    return false;
  }
  return true;
}

void FloodCore::Tally(int64_t scheduled_ns, uint32_t record, Outcome outcome,
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

void FloodCore::Release(uint32_t index) {
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

void FloodCore::Finish(uint32_t index, Outcome outcome, const std::string& error_name) {
  const Slot& slot = slots_[index];
  Tally(slot.scheduled_ns, slot.record, outcome, error_name, Now() - slot.scheduled_ns);
  Release(index);
}

void FloodCore::Shutdown() {
  finishing_ = true;
  ClosePrepared();
  const int64_t end = Now();
  const bool stopped = stop_.load();
  CancelAll();

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

}  // namespace synq::agent::flood
