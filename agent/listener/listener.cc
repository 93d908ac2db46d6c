#include "agent/listener/listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace synq::agent {
namespace {

using Clock = std::chrono::steady_clock;

// How long the accept thread backs off after EMFILE/ENOBUFS, so a full fd table does not spin.
constexpr std::chrono::milliseconds kResourceBackoff{10};

timespec ToTimespec(std::chrono::nanoseconds d) {
  if (d.count() < 0) d = std::chrono::nanoseconds(0);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(d.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(d.count() % 1'000'000'000);
  return ts;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Start(const ListenerSpec& spec) {
  if (spec.accept == AcceptMode::kPaced && spec.accept_interval.count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listener '", spec.name, "': paced accept needs a positive accept_interval"));
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
  if (spec.accept != AcceptMode::kNever) {
    listener->wake_.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!listener->wake_) return absl::ErrnoToStatus(errno, "eventfd");
    listener->thread_ = std::thread([l = listener.get()] { l->AcceptLoop(); });
  }
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
  // Closing the listening socket first resets whatever still waits in its queues.
  fd_.Reset();
  wake_.Reset();
  std::lock_guard<std::mutex> lock(mu_);
  held_.clear();
}

std::vector<AcceptedConnection> Listener::AcceptedConnections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return accepted_list_;
}

void Listener::ObserveAcceptQueue(int64_t depth) {
  int64_t peak = peak_.load();
  while (depth > peak && !peak_.compare_exchange_weak(peak, depth)) {
  }
}

void Listener::AcceptLoop() {
  enum class Accepted { kOne, kNone, kResourceError };
  // Accepts one connection if one is waiting.
  auto accept_one = [this]() -> Accepted {
    while (true) {
      const int cfd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (cfd >= 0) {
        common::UniqueFd conn(cfd);
        AcceptedConnection record;
        record.accepted_at = std::chrono::system_clock::now();
        if (auto local = common::LocalAddressOf(cfd); local.ok()) record.local = local->ToString();
        // A client that already reset leaves no peer name; the local side is still worth keeping.
        if (auto peer = common::PeerAddressOf(cfd); peer.ok()) record.remote = peer->ToString();
        std::lock_guard<std::mutex> lock(mu_);
        accepted_list_.push_back(std::move(record));
        if (!spec_.close_on_accept) held_.push_back(std::move(conn));
        accepted_.fetch_add(1);
        return Accepted::kOne;
      }
      switch (errno) {
        case EINTR:
        case ECONNABORTED:  // the client gave up while queued: try the next one
        case EPROTO:
          continue;
        case EAGAIN:
          return Accepted::kNone;
        default:  // EMFILE, ENFILE, ENOBUFS, ENOMEM
          spdlog::warn("listener '{}': accept4: {}", spec_.name, std::strerror(errno));
          return Accepted::kResourceError;
      }
    }
  };

  // Waits until the listening socket is readable (when watch_listen), `timeout` passes, or Stop
  // wakes us. Returns false on Stop.
  auto wait = [this](bool watch_listen, const timespec* timeout, bool* readable) -> bool {
    pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {fd_.get(), POLLIN, 0}};
    const int n = ::ppoll(fds, watch_listen ? 2 : 1, timeout, nullptr);
    if (n < 0 && errno != EINTR) {
      spdlog::error("listener '{}': ppoll: {}", spec_.name, std::strerror(errno));
      return false;
    }
    if (fds[0].revents != 0) return false;
    *readable = watch_listen && (fds[1].revents & (POLLIN | POLLERR)) != 0;
    return true;
  };

  if (spec_.accept == AcceptMode::kImmediate) {
    const timespec backoff = ToTimespec(kResourceBackoff);
    const timespec* timeout = nullptr;
    while (true) {
      bool readable = false;
      if (!wait(/*watch_listen=*/timeout == nullptr, timeout, &readable)) return;
      timeout = nullptr;
      if (!readable) continue;
      Accepted result;
      do {
        result = accept_one();
      } while (result == Accepted::kOne);
      // After a resource error the listen socket stays readable: back off instead of spinning.
      if (result == Accepted::kResourceError) timeout = &backoff;
    }
  }

  // kPaced: ticks at start + k*interval, at most one accept per tick. A connection arriving
  // between ticks waits in the accept queue, which is what the pacing is for.
  Clock::time_point next_tick = Clock::now() + spec_.accept_interval;
  while (true) {
    const timespec timeout = ToTimespec(next_tick - Clock::now());
    bool readable = false;
    if (!wait(/*watch_listen=*/false, &timeout, &readable)) return;
    const Clock::time_point now = Clock::now();
    if (now < next_tick) continue;  // woken early (EINTR)
    accept_one();
    next_tick += spec_.accept_interval;
    // After a stall, skip the missed ticks rather than accepting a burst.
    if (next_tick <= now) next_tick = now + spec_.accept_interval;
  }
}

}  // namespace synq::agent
