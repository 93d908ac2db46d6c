// A TCP listener that never accepts, accepts at a fixed pace, or accepts at once, and can pause.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/listener/accept_schedule.h"
#include "common/modes.h"
#include "common/net_address.h"
#include "common/unique_fd.h"

namespace synq::agent {

using common::AcceptMode;

struct ListenerSpec {
  std::string name;
  std::string address = "0.0.0.0";
  uint16_t port = 0;  // 0 = any free port
  int backlog = 128;  // passed to ::listen as is, -1 included
  AcceptMode accept = AcceptMode::kNever;
  // kPaced: exactly one of these; tick n is due at listener start + n * interval (or n / rate).
  std::chrono::nanoseconds accept_interval{0};
  double accept_rate = 0;        // accepts per second
  bool close_on_accept = false;  // close accepted sockets at once instead of holding
  // Windows without accepting, as offsets from the run's flood start (see SetFloodStart).
  std::vector<PauseWindow> pauses;
  // Immediate: use io_uring multishot accept where the kernel has it. False forces the accept4
  // loop (the fallback), for tests and the benchmark.
  bool allow_multishot = true;
};

// How an accepting listener takes connections off its queue.
enum class AcceptEngine {
  kNone,          // never accepts
  kMultishot,     // io_uring multishot accept (immediate)
  kAccept4Loop,   // ppoll + accept4 until EAGAIN (immediate without multishot accept)
  kPacedAccept4,  // accept4 on the pacing ticks
};
const char* AcceptEngineName(AcceptEngine engine);

class Listener {
 public:
  // Binds and listens (SO_REUSEADDR), then starts the accept thread for paced/immediate.
  // A port in use is an error naming the address; a bad pace or pause is InvalidArgument.
  static absl::StatusOr<std::unique_ptr<Listener>> Start(const ListenerSpec& spec);
  ~Listener();  // Stops and closes everything.

  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Stops accepting, closes the listening socket and every held connection. Idempotent.
  void Stop();

  // The run's flood start instant: pause windows count from it. Before this call no pause
  // applies. May be called again (a later StartFloods moves the anchor).
  void SetFloodStart(std::chrono::system_clock::time_point start_at);

  const ListenerSpec& spec() const { return spec_; }
  const common::SocketAddress& bound() const { return bound_; }
  AcceptEngine engine() const { return engine_; }
  // Connections taken off the accept queue (closed at once or held), counted, never listed:
  // whether a given server socket was accepted is read from sock_diag (its inode).
  uint64_t accepted() const { return accepted_.load(std::memory_order_acquire); }

  // Records an observed accept-queue depth; the peak is the maximum recorded.
  void ObserveAcceptQueue(int64_t depth);
  int64_t accept_queue_peak() const { return peak_.load(); }

 private:
  struct Ring;
  Listener(ListenerSpec spec, common::UniqueFd fd, common::SocketAddress bound);
  void MultishotLoop();
  void Accept4Loop();
  void PacedLoop();
  // Takes `fd` (a fresh accepted socket): closes it or holds it.
  void Take(std::vector<int>& batch);
  // Drains the wake eventfd.
  void DrainWake();
  // Offset of steady `now` from the flood start, or nullopt while no flood start is known.
  std::optional<std::chrono::nanoseconds> FloodOffset(std::chrono::steady_clock::time_point now);

  ListenerSpec spec_;
  common::UniqueFd fd_;
  common::SocketAddress bound_;
  common::UniqueFd wake_;  // eventfd: wakes the accept thread (Stop, SetFloodStart)
  std::unique_ptr<Ring> ring_;
  AcceptEngine engine_ = AcceptEngine::kNone;
  PauseWindows pauses_;
  std::optional<PaceSchedule> pace_;
  std::chrono::steady_clock::time_point started_;
  // The flood start on the steady clock, in ns since its epoch; kNoFloodStart until known.
  static constexpr int64_t kNoFloodStart = INT64_MIN;
  std::atomic<int64_t> flood_start_{kNoFloodStart};
  std::thread thread_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<int64_t> peak_{0};
  std::mutex mu_;
  std::vector<common::UniqueFd> held_;  // 4 bytes per held connection
  std::atomic<bool> stopped_{false};
};

}  // namespace synq::agent
