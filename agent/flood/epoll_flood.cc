#include "agent/flood/epoll_flood.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <deque>
#include <utility>

#include "absl/status/status.h"
#include "agent/flood/flood_core.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/user_data.h"
#include "common/unique_fd.h"

namespace synq::agent::flood {
namespace {

// Events fetched per epoll_pwait2 call, and calls per pass while they come back full (the
// io_uring engine reaps up to 4096 completions a pass).
constexpr int kMaxEvents = 1024;
constexpr int kMaxWaitsPerPass = 4;
// Level-triggered: unread data or a pending EOF/error keeps reporting until handled.
constexpr uint32_t kWatchEvents = EPOLLIN | EPOLLRDHUP;

class EpollFlood final : public FloodCore {
 public:
  EpollFlood(const FloodSpec& spec, std::optional<common::SocketAddress> source,
             common::UniqueFd epoll, const std::atomic<bool>& stop, uint64_t expected_slots)
      : FloodCore(spec, std::move(source), stop, expected_slots, "epoll"),
        connect_timeout_ns_(spec.connect_timeout.count()),
        epoll_(std::move(epoll)) {}

 private:
  void StartConnect(uint32_t index) override;
  void StartWatching(uint32_t index) override;
  // close() takes the socket out of the epoll set (we hold its only reference): nothing to wait
  // for.
  bool PrepareClose(uint32_t /*index*/) override { return false; }
  void WaitAndReap(int64_t timeout_ns) override;
  void ReapReady() override { WaitAndReap(0); }
  int64_t NextIoDeadline() override;
  void ExpireIo(int64_t now) override;

  // One epoll wait of at most `timeout_ns`: the number of events, or -1 (EINTR: none).
  int Wait(int64_t timeout_ns);
  void Dispatch(const epoll_event& event);
  // Drops deadlines at the queue's head whose connect already resolved.
  void SkipResolvedDeadlines();

  const int64_t connect_timeout_ns_;
  common::UniqueFd epoll_;
  // Connect deadlines in launch order (the timeout is constant, so the queue is sorted).
  std::deque<SlotDeadline> connect_deadlines_;
  std::array<epoll_event, kMaxEvents> events_{};
  bool have_pwait2_ = true;
};

void EpollFlood::StartConnect(uint32_t index) {
  Slot& slot = slots_[index];
  if (::connect(slot.fd, target_.get(), target_.length) == 0) return OnConnect(index, 0);
  if (errno != EINPROGRESS) return OnConnect(index, -errno);
  epoll_event ev{};
  ev.events = EPOLLOUT;  // EPOLLERR and EPOLLHUP are always reported
  ev.data.u64 = PackUserData(Op::kConnect, index, slot.generation);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, slot.fd, &ev) != 0) return OnConnect(index, -errno);
  // kPollPending: the socket is in the epoll set. kConnectPending: its connect is in flight.
  slot.flags = kConnectPending | kPollPending;
  connect_deadlines_.push_back({Now() + connect_timeout_ns_, index, slot.generation});
}

void EpollFlood::StartWatching(uint32_t index) {
  Slot& slot = slots_[index];
  if (!payload_.empty()) {
    const ssize_t n =
        ::send(slot.fd, payload_.data(), payload_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    const int res = n >= 0 ? static_cast<int>(n) : (errno == EAGAIN ? 0 : -errno);
    OnSendResult(index, res);
    if (slot.state == kFree) return;  // the send found the connection reset
  }
  epoll_event ev{};
  ev.events = kWatchEvents;
  ev.data.u64 = PackUserData(Op::kPoll, index, slot.generation);
  const int op = (slot.flags & kPollPending) != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (::epoll_ctl(epoll_.get(), op, slot.fd, &ev) != 0) {
    return Finish(index, Outcome::kError, ErrnoName(errno));
  }
  slot.flags |= kPollPending;
}

int EpollFlood::Wait(int64_t timeout_ns) {
  timeout_ns = std::max<int64_t>(timeout_ns, 0);
  int n = -1;
  if (have_pwait2_) {
    timespec ts{};
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    n = ::epoll_pwait2(epoll_.get(), events_.data(), kMaxEvents, &ts, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    have_pwait2_ = false;  // before Linux 5.11 (or filtered): millisecond waits, rounded up
  }
  const int64_t ms = std::min<int64_t>((timeout_ns + 999'999) / 1'000'000, 1'000'000);
  return ::epoll_wait(epoll_.get(), events_.data(), kMaxEvents, static_cast<int>(ms));
}

void EpollFlood::WaitAndReap(int64_t timeout_ns) {
  for (int pass = 0; pass < kMaxWaitsPerPass; ++pass) {
    const int n = Wait(pass == 0 ? timeout_ns : 0);
    for (int i = 0; i < n; ++i) Dispatch(events_[i]);
    if (n < kMaxEvents) return;
  }
}

void EpollFlood::Dispatch(const epoll_event& event) {
  const UserData ud = UnpackUserData(event.data.u64);
  if (ud.slot >= slots_.size()) return;
  Slot& slot = slots_[ud.slot];
  // An event of a slot's earlier occupant, fetched in the same batch as its close.
  if (slot.generation != ud.generation || slot.state == kFree) return;
  if (ud.op == Op::kConnect) {
    if (slot.state != kConnecting) return;
    // Writable without an error or hang-up: connected (one syscall fewer per connect). Anything
    // else (refused, reset after the SYN-ACK, tcp_syn_retries exhausted): SO_ERROR says which.
    if ((event.events & (EPOLLERR | EPOLLHUP)) == 0 && (event.events & EPOLLOUT) != 0) {
      return OnConnect(ud.slot, 0);
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(slot.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    // No error and not writable (EPOLLHUP alone): the socket is shut without a reason given.
    if (err == 0 && (event.events & EPOLLOUT) == 0) err = ENOTCONN;
    return OnConnect(ud.slot, -err);
  }
  if (ud.op == Op::kPoll && slot.state == kLiving) OnReadable(ud.slot);
}

void EpollFlood::SkipResolvedDeadlines() {
  while (!connect_deadlines_.empty()) {
    const SlotDeadline& due = connect_deadlines_.front();
    const Slot& slot = slots_[due.slot];
    if (slot.generation == due.generation && slot.state == kConnecting) return;
    connect_deadlines_.pop_front();
  }
}

int64_t EpollFlood::NextIoDeadline() {
  SkipResolvedDeadlines();
  return connect_deadlines_.empty() ? kNever : connect_deadlines_.front().at_ns;
}

void EpollFlood::ExpireIo(int64_t now) {
  SkipResolvedDeadlines();
  while (!connect_deadlines_.empty() && connect_deadlines_.front().at_ns <= now) {
    const SlotDeadline due = connect_deadlines_.front();
    connect_deadlines_.pop_front();
    const Slot& slot = slots_[due.slot];
    if (slot.generation == due.generation && slot.state == kConnecting) {
      OnConnectTimedOut(due.slot);
    }
  }
}

}  // namespace

absl::StatusOr<FloodResult> RunEpollFlood(const FloodSpec& spec,
                                          std::optional<common::SocketAddress> source,
                                          std::chrono::system_clock::time_point scheduled,
                                          const std::atomic<bool>& stop, uint64_t sockets) {
  common::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return absl::ErrnoToStatus(errno, "epoll_create1");
  EpollFlood flood(spec, std::move(source), std::move(epoll), stop, sockets);
  return flood.Run(scheduled);
}

}  // namespace synq::agent::flood
