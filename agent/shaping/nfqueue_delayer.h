// The NFQUEUE backend's userspace half: a thread that holds each queued packet for the asked
// delay (+ jitter, keeping order), drops a share of them, and paces them to a rate.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"

struct mnl_socket;

namespace synq::agent {

using DelayerClock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, as timerfd uses

struct DelayerParams {
  std::chrono::nanoseconds delay{0};
  std::chrono::nanoseconds jitter{0};  // uniform in [-jitter, +jitter]; jitter <= delay
  double loss_percent = 0;
  uint64_t rate_bits_per_second = 0;  // 0 = unlimited
};

// When each packet leaves: the pure part of the delayer, deterministic for a given seed.
// A packet first waits for the link to be free and is serialized at the rate (length * 8 / rate),
// then is held for delay + jitter; release times never decrease, so packets leave in order:
//   release = max(serialized + delay + j, previous release).
class ReleaseSchedule {
 public:
  ReleaseSchedule(const DelayerParams& params, uint64_t seed);
  // std::nullopt: drop the packet (loss); otherwise when to accept it.
  std::optional<DelayerClock::time_point> Admit(DelayerClock::time_point arrival,
                                                uint32_t length_bytes);

 private:
  DelayerParams params_;
  std::mt19937_64 rng_;
  DelayerClock::time_point link_free_at_{};
  DelayerClock::time_point last_release_{};
};

struct DelayerStats {
  uint64_t received = 0;
  uint64_t accepted = 0;
  uint64_t dropped = 0;         // by the loss rate
  uint64_t receive_errors = 0;  // ENOBUFS: the kernel dropped packets it could not queue to us
};

class NfqueueDelayer {
 public:
  // Binds the first free NFQUEUE number from first_queue on (EBUSY: taken by another socket, try
  // the next) in the calling thread's network namespace, and starts the delayer thread.
  static absl::StatusOr<std::unique_ptr<NfqueueDelayer>> Start(const DelayerParams& params,
                                                               uint16_t first_queue);
  ~NfqueueDelayer();  // Stop()
  NfqueueDelayer(const NfqueueDelayer&) = delete;
  NfqueueDelayer& operator=(const NfqueueDelayer&) = delete;

  uint16_t queue_num() const { return queue_num_; }
  const DelayerParams& params() const { return params_; }
  // Accepts every packet still held and every packet still waiting in the socket, then joins
  // the thread and unbinds the queue. Call it after the NFQUEUE rule is gone: a packet queued
  // after the unbind is dropped by the kernel. Idempotent.
  void Stop();
  DelayerStats stats() const;

 private:
  struct Counters {
    std::atomic<uint64_t> received{0}, accepted{0}, dropped{0}, receive_errors{0};
  };
  NfqueueDelayer(const DelayerParams& params, mnl_socket* nl, uint16_t queue_num,
                 common::UniqueFd stop_fd, common::UniqueFd timer_fd);
  void Run();

  DelayerParams params_;
  mnl_socket* nl_;
  uint16_t queue_num_;
  common::UniqueFd stop_fd_;   // eventfd
  common::UniqueFd timer_fd_;  // timerfd, CLOCK_MONOTONIC, absolute
  Counters counters_;
  std::thread thread_;
};

// Whether this process can bind an NFQUEUE here (needs CAP_NET_ADMIN and nfnetlink_queue).
absl::Status ProbeQueueBinding();

// A queue number unlikely to collide with other agents: derived from the pid and a counter.
uint16_t SuggestQueueNumber();

}  // namespace synq::agent
