#include "agent/shaping/nfqueue_delayer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace synq::agent {
namespace {

using common::UniqueFd;
using std::chrono::nanoseconds;

constexpr int kFirstQueue = 1000;
constexpr int kQueueSpan = 60000;
constexpr int kBindAttempts = 256;
// Packets the kernel holds for us awaiting a verdict: 200 ms at 100k packets/s is 20k.
constexpr uint32_t kQueueMaxLen = 65536;
constexpr int kReceiveBuffer = 8 << 20;
constexpr int kCopyRange = 64;
// Netlink messages built or read here (MNL_SOCKET_BUFFER_SIZE is not a constant expression).
constexpr size_t kMessageBuffer = 8192;
// Per wake-up, so a flood of arrivals cannot starve due releases.
constexpr int kMaxReceivesPerWake = 1024;

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

// Sends one NFQNL_MSG_CONFIG with NLM_F_ACK on a blocking socket; returns the kernel's errno.
absl::StatusOr<int> ConfigRequest(mnl_socket* nl, nlmsghdr* nlh, uint32_t seq) {
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
    return absl::ErrnoToStatus(errno, "send NFQNL_MSG_CONFIG");
  }
  std::vector<uint8_t> buf(kMessageBuffer);
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "recv NFQNL_MSG_CONFIG ack");
    }
    int remaining = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, remaining);
         m = mnl_nlmsg_next(m, &remaining)) {
      if (m->nlmsg_type == NLMSG_ERROR && m->nlmsg_seq == seq) {
        return -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
      }
    }
  }
}

struct BoundQueue {
  MnlSocket nl;
  uint16_t queue_num = 0;
};

uint16_t WrapQueue(int n) {
  return static_cast<uint16_t>(kFirstQueue +
                               ((n - kFirstQueue) % kQueueSpan + kQueueSpan) % kQueueSpan);
}

absl::StatusOr<BoundQueue> OpenAndBind(uint16_t first_queue) {
  MnlSocket nl(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!nl) return absl::ErrnoToStatus(errno, "socket(NETLINK_NETFILTER)");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::ErrnoToStatus(errno, "bind(NETLINK_NETFILTER)");
  }
  alignas(8) char buf[kMessageBuffer];
  uint32_t seq = 1;
  for (int attempt = 0; attempt < kBindAttempts; ++attempt) {
    const uint16_t queue = WrapQueue(first_queue + attempt);
    nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
    ASSIGN_OR_RETURN(int err, ConfigRequest(nl.get(), nlh, seq++));
    if (err == EBUSY) continue;  // another socket listens on it
    if (err != 0) {
      return absl::ErrnoToStatus(err, absl::StrCat("bind NFQUEUE ", queue));
    }
    return BoundQueue{std::move(nl), queue};
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("no free NFQUEUE number in ", kBindAttempts, " from ", first_queue));
}

// Verdict messages gathered into one send: a burst of due packets costs one syscall.
class VerdictBatch {
 public:
  VerdictBatch(mnl_socket* nl, uint16_t queue) : nl_(nl), queue_(queue) {}
  void Add(uint32_t id, int verdict) {
    if (used_ + kVerdictSpace > sizeof(buf_)) Flush();
    nlmsghdr* nlh = nfq_nlmsg_put(buf_ + used_, NFQNL_MSG_VERDICT, queue_);
    nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), verdict);
    used_ += MNL_ALIGN(nlh->nlmsg_len);
  }
  void Flush() {
    if (used_ == 0) return;
    if (mnl_socket_sendto(nl_, buf_, used_) < 0) {
      // The packets stay queued in the kernel until the socket closes, then are dropped.
      spdlog::error("nfqueue {}: sending verdicts: {}", queue_, std::strerror(errno));
    }
    used_ = 0;
  }

 private:
  static constexpr size_t kVerdictSpace = 64;  // header + nfgenmsg + verdict attr, aligned
  mnl_socket* nl_;
  uint16_t queue_;
  alignas(8) char buf_[kMessageBuffer];
  size_t used_ = 0;
};

struct HeldPacket {
  uint32_t id;
  DelayerClock::time_point release;
};

}  // namespace

ReleaseSchedule::ReleaseSchedule(const DelayerParams& params, uint64_t seed)
    : params_(params), rng_(seed) {}

std::optional<DelayerClock::time_point> ReleaseSchedule::Admit(DelayerClock::time_point arrival,
                                                               uint32_t length_bytes) {
  if (params_.loss_percent > 0) {
    if (params_.loss_percent >= 100) return std::nullopt;
    if (std::uniform_real_distribution<double>(0, 100)(rng_) < params_.loss_percent) {
      return std::nullopt;
    }
  }
  DelayerClock::time_point sent = arrival;
  if (params_.rate_bits_per_second > 0) {
    const auto bits = static_cast<unsigned __int128>(length_bytes) * 8 * 1000000000ULL;
    const nanoseconds serialization(static_cast<int64_t>(bits / params_.rate_bits_per_second));
    sent = std::max(arrival, link_free_at_) + serialization;
    link_free_at_ = sent;
  }
  nanoseconds jitter{0};
  if (params_.jitter.count() > 0) {
    jitter = nanoseconds(std::uniform_int_distribution<int64_t>(-params_.jitter.count(),
                                                                params_.jitter.count())(rng_));
  }
  const auto release = std::max(sent + params_.delay + jitter, last_release_);
  last_release_ = release;
  return release;
}

absl::StatusOr<std::unique_ptr<NfqueueDelayer>> NfqueueDelayer::Start(const DelayerParams& params,
                                                                      uint16_t first_queue) {
  ASSIGN_OR_RETURN(BoundQueue bound, OpenAndBind(first_queue));
  mnl_socket* nl = bound.nl.get();
  alignas(8) char buf[kMessageBuffer];
  // The delayer needs the packet id and length only. The kernel reports the length
  // (NFQA_CAP_LEN) only in copy-packet mode, so copy a few header bytes rather than metadata.
  nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, bound.queue_num);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, kCopyRange);
  nfq_nlmsg_cfg_put_qmaxlen(nlh, kQueueMaxLen);
  ASSIGN_OR_RETURN(int err, ConfigRequest(nl, nlh, 1000));
  if (err != 0) return absl::ErrnoToStatus(err, "configure NFQUEUE");

  const int fd = mnl_socket_get_fd(nl);
  const int rcvbuf = kReceiveBuffer;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    return absl::ErrnoToStatus(errno, "fcntl(O_NONBLOCK)");
  }
  UniqueFd stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd) return absl::ErrnoToStatus(errno, "eventfd");
  UniqueFd timer_fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer_fd) return absl::ErrnoToStatus(errno, "timerfd_create");

  std::unique_ptr<NfqueueDelayer> delayer(new NfqueueDelayer(
      params, bound.nl.release(), bound.queue_num, std::move(stop_fd), std::move(timer_fd)));
  delayer->thread_ = std::thread([d = delayer.get()] { d->Run(); });
  return delayer;
}

NfqueueDelayer::NfqueueDelayer(const DelayerParams& params, mnl_socket* nl, uint16_t queue_num,
                               UniqueFd stop_fd, UniqueFd timer_fd)
    : params_(params),
      nl_(nl),
      queue_num_(queue_num),
      stop_fd_(std::move(stop_fd)),
      timer_fd_(std::move(timer_fd)) {}

NfqueueDelayer::~NfqueueDelayer() {
  Stop();
  if (nl_ != nullptr) mnl_socket_close(nl_);
}

void NfqueueDelayer::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_fd_.get(), &one, sizeof(one));
  thread_.join();
}

DelayerStats NfqueueDelayer::stats() const {
  return {counters_.received.load(), counters_.accepted.load(), counters_.dropped.load(),
          counters_.receive_errors.load()};
}

void NfqueueDelayer::Run() {
  const std::string name = absl::StrCat("synq-nfq", queue_num_);
  pthread_setname_np(pthread_self(), name.c_str());
  // The default 50 us of timer slack is harmless, but 1 us costs nothing at these rates.
  ::prctl(PR_SET_TIMERSLACK, 1000UL);

  ReleaseSchedule schedule(params_, std::random_device{}());
  std::deque<HeldPacket> held;
  VerdictBatch verdicts(nl_, queue_num_);
  std::vector<uint8_t> buf(0xffff + kMessageBuffer);
  const int nl_fd = mnl_socket_get_fd(nl_);

  // Reads what is queued to us; pass_through accepts everything at once (stopping).
  auto receive = [&](bool pass_through) {
    for (int i = 0; pass_through || i < kMaxReceivesPerWake; ++i) {
      const ssize_t n = ::recv(nl_fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          counters_.receive_errors.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (errno != EAGAIN)
          spdlog::error("nfqueue {}: recv: {}", queue_num_, std::strerror(errno));
        return;
      }
      const auto arrival = DelayerClock::now();
      int remaining = static_cast<int>(n);
      for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, remaining);
           nlh = mnl_nlmsg_next(nlh, &remaining)) {
        if (nlh->nlmsg_type == NLMSG_ERROR) {
          const int err = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
          if (err != 0)
            spdlog::warn("nfqueue {}: verdict refused: {}", queue_num_, std::strerror(err));
          continue;
        }
        nlattr* attr[NFQA_MAX + 1] = {};
        if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) continue;
        const auto* hdr =
            static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
        const uint32_t id = ntohl(hdr->packet_id);
        uint32_t length = 0;
        if (attr[NFQA_CAP_LEN] != nullptr) {
          length = ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN]));
        } else if (attr[NFQA_PAYLOAD] != nullptr) {
          length = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
        }
        counters_.received.fetch_add(1, std::memory_order_relaxed);
        if (pass_through) {
          verdicts.Add(id, NF_ACCEPT);
          counters_.accepted.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        const auto release = schedule.Admit(arrival, length);
        if (!release) {
          verdicts.Add(id, NF_DROP);
          counters_.dropped.fetch_add(1, std::memory_order_relaxed);
        } else {
          held.push_back({id, *release});
        }
      }
    }
  };
  auto release_due = [&](DelayerClock::time_point now) {
    while (!held.empty() && held.front().release <= now) {
      verdicts.Add(held.front().id, NF_ACCEPT);
      counters_.accepted.fetch_add(1, std::memory_order_relaxed);
      held.pop_front();
    }
  };

  pollfd fds[3] = {{nl_fd, POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}, {timer_fd_.get(), POLLIN, 0}};
  for (;;) {
    const int ready = ::poll(fds, 3, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      spdlog::error("nfqueue {}: poll: {}", queue_num_, std::strerror(errno));
      break;
    }
    if (fds[1].revents != 0) break;
    if (fds[2].revents != 0) {
      uint64_t expirations;
      [[maybe_unused]] ssize_t n = ::read(timer_fd_.get(), &expirations, sizeof(expirations));
    }
    if (fds[0].revents != 0) receive(false);
    release_due(DelayerClock::now());
    verdicts.Flush();
    // Release times never decrease, so the head of the FIFO is the next deadline.
    itimerspec when{};
    if (!held.empty()) {
      const auto ns =
          std::chrono::duration_cast<nanoseconds>(held.front().release.time_since_epoch()).count();
      when.it_value.tv_sec = ns / 1000000000;
      when.it_value.tv_nsec = ns % 1000000000;
      if (when.it_value.tv_sec == 0 && when.it_value.tv_nsec == 0) when.it_value.tv_nsec = 1;
    }
    if (::timerfd_settime(timer_fd_.get(), TFD_TIMER_ABSTIME, &when, nullptr) != 0) {
      spdlog::error("nfqueue {}: timerfd_settime: {}", queue_num_, std::strerror(errno));
    }
  }
  // Stopping: the rule is already gone, so what is held and what is still in the socket is all
  // there will be. Let it through rather than have the kernel drop it when the socket closes.
  release_due(DelayerClock::time_point::max());
  receive(true);
  verdicts.Flush();
}

absl::Status ProbeQueueBinding() { return OpenAndBind(SuggestQueueNumber()).status(); }

uint16_t SuggestQueueNumber() {
  static std::atomic<int> counter{0};
  return WrapQueue(kFirstQueue + static_cast<int>(::getpid()) * 16 + counter.fetch_add(1));
}

}  // namespace synq::agent
