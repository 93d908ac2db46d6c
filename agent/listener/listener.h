// A TCP listener that never accepts, accepts at a fixed pace, or accepts at once.
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
  std::chrono::nanoseconds accept_interval{0};  // kPaced: one accept per interval
  bool close_on_accept = false;                 // close accepted sockets at once instead of holding
};

// An accepted connection: server-side 4-tuple.
struct AcceptedConnection {
  std::string local;
  std::string remote;
  std::chrono::system_clock::time_point accepted_at;
};

class Listener {
 public:
  // Binds and listens (SO_REUSEADDR), then starts the accept thread for paced/immediate.
  // A port in use is an error naming the address.
  static absl::StatusOr<std::unique_ptr<Listener>> Start(const ListenerSpec& spec);
  ~Listener();  // Stops and closes everything.

  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Stops accepting, closes the listening socket and every held connection. Idempotent.
  void Stop();

  const ListenerSpec& spec() const { return spec_; }
  const common::SocketAddress& bound() const { return bound_; }
  uint64_t accepted() const { return accepted_.load(); }
  std::vector<AcceptedConnection> AcceptedConnections() const;

  // Records an observed accept-queue depth; the peak is the maximum recorded.
  void ObserveAcceptQueue(int64_t depth);
  int64_t accept_queue_peak() const { return peak_.load(); }

 private:
  Listener(ListenerSpec spec, common::UniqueFd fd, common::SocketAddress bound);
  void AcceptLoop();

  ListenerSpec spec_;
  common::UniqueFd fd_;
  common::SocketAddress bound_;
  common::UniqueFd wake_;  // eventfd: wakes the accept thread to stop
  std::thread thread_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<int64_t> peak_{0};
  mutable std::mutex mu_;
  std::vector<common::UniqueFd> held_;
  std::vector<AcceptedConnection> accepted_list_;
  std::atomic<bool> stopped_{false};
};

}  // namespace synq::agent
