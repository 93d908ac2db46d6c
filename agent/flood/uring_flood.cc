#include "agent/flood/uring_flood.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "agent/flood/flood_core.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/uring.h"
#include "agent/flood/user_data.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace synq::agent::flood {
namespace {

using std::chrono::nanoseconds;
using namespace std::chrono_literals;

// The SQ is flushed whenever it fills, so it only bounds the batch size; the CQ is sized for the
// burst of completions at the end of a large hold (the kernel also keeps overflowed CQEs).
constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 16384;
// How long to wait for cancelled ops to complete before tearing the ring down regardless.
constexpr nanoseconds kDrainBudget = 2s;
// Completions handled per pass before going back to check `stop` and the launch schedule.
constexpr int kMaxCqesPerPass = 4096;
constexpr unsigned kWatchMask = POLLIN | POLLRDHUP | POLLERR | POLLHUP;

__kernel_timespec ToKernelTimespec(nanoseconds d) {
  d = std::max(d, nanoseconds{0});
  __kernel_timespec ts{};
  ts.tv_sec = d.count() / 1'000'000'000;
  ts.tv_nsec = d.count() % 1'000'000'000;
  return ts;
}

class UringFlood final : public FloodCore {
 public:
  UringFlood(const FloodSpec& spec, std::optional<common::SocketAddress> source, Uring ring,
             const std::atomic<bool>& stop, uint64_t expected_slots)
      : FloodCore(spec, std::move(source), stop, expected_slots, "io_uring"),
        connect_timeout_(ToKernelTimespec(spec.connect_timeout)),
        ring_(std::move(ring)) {}

 private:
  void StartConnect(uint32_t index) override;
  void StartWatching(uint32_t index) override;
  bool PrepareClose(uint32_t index) override;
  void WaitAndReap(int64_t timeout_ns) override;
  void ReapReady() override { Reap(); }
  void CancelAll() override;

  void Reap();
  void Dispatch(uint64_t user_data, int res);
  void OnPoll(uint32_t index, int res);
  bool ArmPoll(uint32_t index);
  bool Send(uint32_t index);
  bool Cancel(uint64_t user_data);
  void Drain(Clock::time_point deadline);

  // Read by the kernel while connects are in flight; declared before ring_ so it outlives it.
  const __kernel_timespec connect_timeout_;
  uint64_t ops_in_flight_ = 0;  // our SQEs submitted whose CQE has not been reaped
  Uring ring_;
};

void UringFlood::StartConnect(uint32_t index) {
  Slot& slot = slots_[index];
  // CONNECT and its LINK_TIMEOUT must reach the kernel in the same submit.
  if (!ring_.Reserve(2)) return OnConnect(index, -EBUSY);
  slot.flags = kConnectPending;
  io_uring_sqe* connect = io_uring_get_sqe(ring_.get());
  io_uring_prep_connect(connect, slot.fd, target_.get(), target_.length);
  connect->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data64(connect, PackUserData(Op::kConnect, index, slot.generation));
  io_uring_sqe* timeout = io_uring_get_sqe(ring_.get());
  io_uring_prep_link_timeout(timeout, const_cast<__kernel_timespec*>(&connect_timeout_), 0);
  io_uring_sqe_set_data64(timeout, PackUserData(Op::kLinkTimeout, index, slot.generation));
  ops_in_flight_ += 2;
}

void UringFlood::StartWatching(uint32_t index) {
  if (!payload_.empty() && !Send(index)) return Finish(index, Outcome::kError, ErrnoName(EBUSY));
  if (!ArmPoll(index)) return Finish(index, Outcome::kError, ErrnoName(EBUSY));
}

bool UringFlood::PrepareClose(uint32_t index) {
  const Slot& slot = slots_[index];
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
  return waiting;
}

void UringFlood::WaitAndReap(int64_t timeout_ns) {
  // A failed submit (-EBUSY while the CQ overflows) is retried on the next pass, after reaping.
  ring_.Submit();
  if (timeout_ns > 0) {
    __kernel_timespec ts = ToKernelTimespec(nanoseconds(timeout_ns));
    io_uring_cqe* cqe = nullptr;
    io_uring_wait_cqe_timeout(ring_.get(), &cqe, &ts);  // -ETIME / -EINTR: reap what is there
  }
  Reap();
}

void UringFlood::Reap() {
  for (int i = 0; i < kMaxCqesPerPass; ++i) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(ring_.get(), &cqe) != 0 || cqe == nullptr) return;
    const uint64_t user_data = cqe->user_data;
    const int res = cqe->res;
    io_uring_cqe_seen(ring_.get(), cqe);
    Dispatch(user_data, res);
  }
}

void UringFlood::Dispatch(uint64_t user_data, int res) {
  const UserData ud = UnpackUserData(user_data);
  if (!IsFloodOp(ud.op)) return;
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
      slot.flags &= ~kSendPending;
      OnSendResult(ud.slot, res);
      break;
    case Op::kLinkTimeout:  // -ETIME when it fired; the connect's own CQE says what happened
    case Op::kCancel:
      break;
  }
}

void UringFlood::OnPoll(uint32_t index, int res) {
  slots_[index].flags &= ~kPollPending;
  if (res < 0) return Finish(index, Outcome::kError, ErrnoName(-res));
  // A poll is one-shot: re-armed while the socket lives.
  if (OnReadable(index) && !ArmPoll(index)) Finish(index, Outcome::kError, ErrnoName(EBUSY));
}

bool UringFlood::ArmPoll(uint32_t index) {
  Slot& slot = slots_[index];
  io_uring_sqe* sqe = ring_.GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_poll_add(sqe, slot.fd, kWatchMask);
  io_uring_sqe_set_data64(sqe, PackUserData(Op::kPoll, index, slot.generation));
  slot.flags |= kPollPending;
  ++ops_in_flight_;
  return true;
}

bool UringFlood::Send(uint32_t index) {
  Slot& slot = slots_[index];
  io_uring_sqe* sqe = ring_.GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_send(sqe, slot.fd, payload_.data(), payload_.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, PackUserData(Op::kSend, index, slot.generation));
  slot.flags |= kSendPending;
  ++ops_in_flight_;
  return true;
}

bool UringFlood::Cancel(uint64_t user_data) {
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

void UringFlood::Drain(Clock::time_point deadline) {
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

void UringFlood::CancelAll() {
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
}

}  // namespace

absl::StatusOr<FloodResult> RunUringFlood(const FloodSpec& spec,
                                          std::optional<common::SocketAddress> source,
                                          std::chrono::system_clock::time_point scheduled,
                                          const std::atomic<bool>& stop, uint64_t sockets) {
  ASSIGN_OR_RETURN(Uring ring, Uring::Create(kSqEntries, kCqEntries));
  UringFlood flood(spec, std::move(source), std::move(ring), stop, sockets);
  return flood.Run(scheduled);
}

}  // namespace synq::agent::flood
