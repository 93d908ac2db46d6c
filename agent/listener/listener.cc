#include "agent/listener/listener.h"

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace synq::agent {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;

// How long the accept thread backs off after EMFILE/ENOBUFS, so a full fd table does not spin.
constexpr std::chrono::milliseconds kResourceBackoff{10};
// Completions reaped per wake-up at most: a burst of accepts is handled in batches this big.
constexpr unsigned kCqEntries = 4096;

// user_data of the ring's operations: op in the low byte, the accept arm's generation above it,
// so the last completion of a cancelled arm is never taken for the new arm's.
enum Op : uint64_t { kOpAccept = 1, kOpWake = 2, kOpCancel = 3 };
constexpr uint64_t Pack(Op op, uint64_t generation) { return (generation << 8) | op; }
constexpr Op OpOf(uint64_t user_data) { return static_cast<Op>(user_data & 0xff); }
constexpr uint64_t GenerationOf(uint64_t user_data) { return user_data >> 8; }

timespec ToTimespec(nanoseconds d) {
  if (d.count() < 0) d = nanoseconds(0);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(d.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(d.count() % 1'000'000'000);
  return ts;
}

}  // namespace

const char* AcceptEngineName(AcceptEngine engine) {
  switch (engine) {
    case AcceptEngine::kNone:
      return "none";
    case AcceptEngine::kMultishot:
      return "io_uring multishot accept";
    case AcceptEngine::kAccept4Loop:
      return "accept4 loop";
    case AcceptEngine::kPacedAccept4:
      return "paced accept4";
  }
  return "none";
}

// The immediate listener's ring: one multishot accept and one read of the wake eventfd.
struct Listener::Ring {
  io_uring ring{};
  uint64_t wake_value = 0;  // the eventfd read's buffer
  bool set_up = false;      // io_uring_queue_init succeeded
  ~Ring() {
    if (set_up) io_uring_queue_exit(&ring);
  }
};

absl::StatusOr<std::unique_ptr<Listener>> Listener::Start(const ListenerSpec& spec) {
  std::optional<PaceSchedule> pace;
  if (spec.accept == AcceptMode::kPaced) {
    const bool has_interval = spec.accept_interval.count() != 0;
    const bool has_rate = spec.accept_rate != 0;
    if (has_interval == has_rate) {
      return absl::InvalidArgumentError(
          absl::StrCat("listener '", spec.name,
                       "': paced accept needs exactly one of accept_interval and accept_rate"));
    }
    absl::StatusOr<PaceSchedule> schedule = has_rate
                                                ? PaceSchedule::FromRate(spec.accept_rate)
                                                : PaceSchedule::FromInterval(spec.accept_interval);
    if (!schedule.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("listener '", spec.name, "': ", schedule.status().message()));
    }
    pace = *schedule;
  }
  absl::StatusOr<PauseWindows> pauses = PauseWindows::Make(spec.pauses);
  if (!pauses.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("listener '", spec.name, "': ", pauses.status().message()));
  }
  ASSIGN_OR_RETURN(common::SocketAddress address,
                   common::ParseHostAddress(spec.address, spec.port));
  // Non-blocking so the accept thread can drain the queue until EAGAIN and never hang in accept.
  common::UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return absl::ErrnoToStatus(errno, "socket");
  const int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    return absl::ErrnoToStatus(errno, "setsockopt(SO_REUSEADDR)");
  }
  if (::bind(fd.get(), address.get(), address.length) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      return absl::FailedPreconditionError(
          absl::StrCat("listen address ", address.ToString(), " is already in use"));
    }
    return absl::ErrnoToStatus(err, absl::StrCat("bind ", address.ToString()));
  }
  // The backlog goes to the kernel as given (-1, or above somaxconn): the kernel's own capping
  // is what a backlog test measures.
  if (::listen(fd.get(), spec.backlog) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("listen ", address.ToString()));
  }
  ASSIGN_OR_RETURN(common::SocketAddress bound, common::LocalAddressOf(fd.get()));

  std::unique_ptr<Listener> listener(new Listener(spec, std::move(fd), bound));
  listener->pauses_ = *std::move(pauses);
  listener->pace_ = pace;
  listener->started_ = Clock::now();
  if (spec.accept == AcceptMode::kNever) return listener;

  listener->wake_.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!listener->wake_) return absl::ErrnoToStatus(errno, "eventfd");
  if (spec.accept == AcceptMode::kPaced) {
    listener->engine_ = AcceptEngine::kPacedAccept4;
    listener->thread_ = std::thread([l = listener.get()] { l->PacedLoop(); });
    return listener;
  }
  // Immediate: io_uring multishot accept (one SQE, one CQE per connection, no syscall per
  // accept) where the kernel has it (5.19+); a tight accept4 loop otherwise.
  auto ring = std::make_unique<Ring>();
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = kCqEntries;
  const int init = spec.allow_multishot ? io_uring_queue_init_params(64, &ring->ring, &params) : 0;
  std::string fallback_reason;
  ring->set_up = spec.allow_multishot && init == 0;
  if (!spec.allow_multishot) {
    fallback_reason = "the listener spec asks for the accept4 loop";
  } else if (init < 0) {
    fallback_reason = absl::StrCat("io_uring_queue_init: ", std::strerror(-init));
  } else {
    // Probe: an old kernel rejects the multishot flag at once with -EINVAL.
    io_uring_sqe* sqe = io_uring_get_sqe(&ring->ring);
    io_uring_prep_multishot_accept(sqe, listener->fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, Pack(kOpAccept, 0));
    const int submitted = io_uring_submit(&ring->ring);
    io_uring_cqe* cqe = nullptr;
    if (submitted != 1) {
      fallback_reason = absl::StrCat("io_uring_submit: ", std::strerror(-submitted));
    } else if (io_uring_peek_cqe(&ring->ring, &cqe) == 0 && cqe->res == -EINVAL &&
               OpOf(cqe->user_data) == kOpAccept) {
      fallback_reason = "the kernel rejects IORING_ACCEPT_MULTISHOT (needs Linux 5.19+)";
    }
  }
  if (!fallback_reason.empty()) ring.reset();
  if (ring == nullptr) {
    if (spec.allow_multishot) {
      spdlog::warn(
          "listener '{}': io_uring multishot accept unavailable ({}); using an accept4 loop",
          spec.name, fallback_reason);
    }
    listener->engine_ = AcceptEngine::kAccept4Loop;
    listener->thread_ = std::thread([l = listener.get()] { l->Accept4Loop(); });
    return listener;
  }
  listener->ring_ = std::move(ring);
  listener->engine_ = AcceptEngine::kMultishot;
  listener->thread_ = std::thread([l = listener.get()] { l->MultishotLoop(); });
  return listener;
}

Listener::Listener(ListenerSpec spec, common::UniqueFd fd, common::SocketAddress bound)
    : spec_(std::move(spec)), fd_(std::move(fd)), bound_(bound) {}

Listener::~Listener() { Stop(); }

void Listener::Stop() {
  if (stopped_.exchange(true)) return;
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one)) {
      spdlog::error("listener '{}': cannot wake the accept thread: {}", spec_.name,
                    std::strerror(errno));
    }
    thread_.join();
  }
  ring_.reset();
  // Closing the listening socket first resets whatever still waits in its queues.
  fd_.Reset();
  wake_.Reset();
  std::lock_guard<std::mutex> lock(mu_);
  held_.clear();
}

void Listener::SetFloodStart(std::chrono::system_clock::time_point start_at) {
  // The controller gives a wall-clock instant; pauses are timed on the steady clock.
  const Clock::time_point steady = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                      start_at - std::chrono::system_clock::now());
  flood_start_.store(steady.time_since_epoch().count());
  spdlog::info("listener '{}': flood start in {} ms; {} pause window(s) count from it", spec_.name,
               std::chrono::duration_cast<std::chrono::milliseconds>(steady - Clock::now()).count(),
               spec_.pauses.size());
  if (wake_) {
    const uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one)) {
      spdlog::error("listener '{}': cannot wake the accept thread: {}", spec_.name,
                    std::strerror(errno));
    }
  }
}

std::optional<nanoseconds> Listener::FloodOffset(Clock::time_point now) {
  const int64_t start = flood_start_.load();
  if (start == kNoFloodStart) return std::nullopt;
  return now - Clock::time_point(Clock::duration(start));
}

void Listener::ObserveAcceptQueue(int64_t depth) {
  int64_t peak = peak_.load();
  while (depth > peak && !peak_.compare_exchange_weak(peak, depth)) {
  }
}

void Listener::DrainWake() {
  uint64_t value = 0;
  while (::read(wake_.get(), &value, sizeof(value)) == sizeof(value)) {
  }
}

void Listener::Take(std::vector<int>& batch) {
  if (batch.empty()) return;
  // Counted before the close: a client that sees the server's FIN finds its accept counted.
  accepted_.fetch_add(batch.size(), std::memory_order_release);
  if (spec_.close_on_accept) {
    for (int fd : batch) ::close(fd);
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : batch) held_.emplace_back(fd);
  }
  batch.clear();
}

void Listener::MultishotLoop() {
  io_uring* ring = &ring_->ring;
  uint64_t generation = 0;  // of the current accept arm; arm 0 was submitted by Start
  bool armed = true;
  bool wake_armed = false;
  bool cancelling = false;
  std::optional<Clock::time_point> backoff_until;
  std::vector<int> batch;
  batch.reserve(kCqEntries);

  auto get_sqe = [ring]() {
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    if (sqe == nullptr) {
      io_uring_submit(ring);
      sqe = io_uring_get_sqe(ring);
    }
    return sqe;
  };
  auto arm = [&] {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return;
    io_uring_prep_multishot_accept(sqe, fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, Pack(kOpAccept, ++generation));
    armed = true;
  };
  auto cancel = [&] {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return;
    io_uring_prep_cancel64(sqe, Pack(kOpAccept, generation), 0);
    io_uring_sqe_set_data64(sqe, Pack(kOpCancel, generation));
    cancelling = true;
  };

  while (true) {
    const bool stopping = stopped_.load();
    if (stopping && !armed) break;
    const Clock::time_point now = Clock::now();
    if (backoff_until && now >= *backoff_until) backoff_until.reset();
    // Pause state: nothing applies before the flood start is known.
    std::optional<Clock::time_point> next_event;
    bool paused = false;
    if (std::optional<nanoseconds> offset = FloodOffset(now)) {
      if (std::optional<nanoseconds> until = pauses_.PausedUntil(*offset)) {
        paused = true;
        next_event = now + (*until - *offset);
      } else if (std::optional<nanoseconds> next = pauses_.NextPauseAfter(*offset)) {
        next_event = now + (*next - *offset);
      }
    }
    if ((paused || stopping) && armed && !cancelling) cancel();
    if (!paused && !stopping && !armed && !backoff_until) arm();
    if (!wake_armed && !stopping) {
      if (io_uring_sqe* sqe = get_sqe()) {
        io_uring_prep_read(sqe, wake_.get(), &ring_->wake_value, sizeof(ring_->wake_value), 0);
        io_uring_sqe_set_data64(sqe, Pack(kOpWake, 0));
        wake_armed = true;
      }
    }
    if (backoff_until && (!next_event || *backoff_until < *next_event)) {
      next_event = backoff_until;
    }
    __kernel_timespec timeout{};
    io_uring_cqe* cqe = nullptr;
    int ret = 0;
    if (next_event) {
      const nanoseconds wait = std::max(nanoseconds(0), *next_event - now);
      timeout.tv_sec = wait.count() / 1'000'000'000;
      timeout.tv_nsec = wait.count() % 1'000'000'000;
      ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &timeout, nullptr);
    } else {
      ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, nullptr, nullptr);
    }
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
      spdlog::error("listener '{}': io_uring wait: {}", spec_.name, std::strerror(-ret));
      break;
    }
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(ring, head, cqe) {
      ++seen;
      const uint64_t data = io_uring_cqe_get_data64(cqe);
      switch (OpOf(data)) {
        case kOpAccept: {
          const bool current = GenerationOf(data) == generation;
          if (cqe->res >= 0) batch.push_back(cqe->res);
          if (current && (cqe->flags & IORING_CQE_F_MORE) == 0) {
            armed = false;
            cancelling = false;
            const int err = -cqe->res;
            if (cqe->res < 0 && err != ECANCELED && err != ECONNABORTED && err != EINTR) {
              spdlog::warn("listener '{}': multishot accept ended: {}", spec_.name,
                           std::strerror(err));
              // EMFILE/ENOBUFS persist while the listen socket stays readable: back off
              // before re-arming instead of spinning.
              backoff_until = Clock::now() + kResourceBackoff;
            }
          }
          break;
        }
        case kOpWake:
          wake_armed = false;
          DrainWake();
          break;
        case kOpCancel:
          break;
      }
    }
    io_uring_cq_advance(ring, seen);
    Take(batch);
  }
  // Closing the ring cancels the pending wake read; the accept arm has ended, so no accepted
  // socket is left unreaped in the CQ.
}

void Listener::Accept4Loop() {
  const timespec backoff = ToTimespec(kResourceBackoff);
  std::vector<int> batch;
  batch.reserve(kCqEntries);
  while (!stopped_.load()) {
    const Clock::time_point now = Clock::now();
    std::optional<nanoseconds> wait;
    bool paused = false;
    if (std::optional<nanoseconds> offset = FloodOffset(now)) {
      if (std::optional<nanoseconds> until = pauses_.PausedUntil(*offset)) {
        paused = true;
        wait = *until - *offset;
      } else if (std::optional<nanoseconds> next = pauses_.NextPauseAfter(*offset)) {
        wait = *next - *offset;
      }
    }
    pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {fd_.get(), POLLIN, 0}};
    const timespec timeout = ToTimespec(wait.value_or(nanoseconds(0)));
    const int n = ::ppoll(fds, paused ? 1 : 2, wait ? &timeout : nullptr, nullptr);
    if (n < 0 && errno != EINTR) {
      spdlog::error("listener '{}': ppoll: {}", spec_.name, std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) DrainWake();
    if (paused || (fds[1].revents & (POLLIN | POLLERR)) == 0) continue;
    // Drain the queue in a tight loop, handing fds over in batches.
    bool resource_error = false;
    while (true) {
      const int cfd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd >= 0) {
        batch.push_back(cfd);
        if (batch.size() == kCqEntries) Take(batch);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno != EAGAIN) {
        spdlog::warn("listener '{}': accept4: {}", spec_.name, std::strerror(errno));
        resource_error = true;
      }
      break;
    }
    Take(batch);
    // After a resource error the listen socket stays readable: back off instead of spinning.
    if (resource_error) ::ppoll(fds, 1, &backoff, nullptr);
  }
}

void Listener::PacedLoop() {
  // Ticks on the absolute schedule started_ + DueAt(n). At each wake-up every tick due so far
  // gets one accept if a connection waits; a tick with an empty queue, or inside a pause, is
  // lost (a server's idle worker). Late wake-ups therefore catch up without shifting the
  // schedule, and a pause costs exactly the ticks inside it.
  uint64_t next_tick = 1;
  std::vector<int> batch;
  while (!stopped_.load()) {
    const Clock::time_point now = Clock::now();
    const uint64_t due = pace_->DueBy(now - started_);
    uint64_t credits = 0;
    for (; next_tick <= due; ++next_tick) {
      const Clock::time_point at = started_ + pace_->DueAt(next_tick);
      std::optional<nanoseconds> offset = FloodOffset(at);
      if (offset && pauses_.PausedUntil(*offset)) continue;
      ++credits;
    }
    for (; credits > 0; --credits) {
      const int cfd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd >= 0) {
        batch.push_back(cfd);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
        ++credits;  // the tick was not used: try the next one waiting
        continue;
      }
      if (errno != EAGAIN) {
        spdlog::warn("listener '{}': accept4: {}", spec_.name, std::strerror(errno));
      }
      break;  // an empty queue (or a full fd table) loses the ticks due now
    }
    Take(batch);
    // Sleep until the next tick, or to the end of the pause it falls in.
    Clock::time_point wake_at = started_ + pace_->DueAt(next_tick);
    if (std::optional<nanoseconds> offset = FloodOffset(wake_at)) {
      if (std::optional<nanoseconds> until = pauses_.PausedUntil(*offset)) {
        wake_at += *until - *offset;
      }
    }
    pollfd wake{wake_.get(), POLLIN, 0};
    const timespec timeout = ToTimespec(wake_at - Clock::now());
    if (::ppoll(&wake, 1, &timeout, nullptr) > 0) DrainWake();
  }
}

}  // namespace synq::agent
