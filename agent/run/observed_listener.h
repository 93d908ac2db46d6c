// A listening socket that another process owns (nginx, the user's service), found by port with
// sock_diag and watched like synq's own listeners: queues, owner, and its server sockets.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "agent/kernel/sock_diag.h"

namespace synq::agent {

class ObservedListener {
 public:
  // Finds the socket listening on `port` (and on `address`, when not empty: "198.18.0.2", "::")
  // in the calling thread's network namespace. NotFound, naming the address and port, when
  // nothing listens there. With several listeners on the port and no address, the one with the
  // lowest inode is taken (the first one the server opened).
  static absl::StatusOr<ObservedListener> Find(const std::string& name, uint16_t port,
                                               const std::string& address);

  ObservedListener(const ObservedListener& other);
  ObservedListener& operator=(const ObservedListener&) = delete;

  const std::string& name() const { return name_; }
  const std::string& ip() const { return ip_; }        // bound address: "0.0.0.0", "198.18.0.2"
  const std::string& local() const { return local_; }  // "ip:port"
  uint16_t port() const { return port_; }
  uint64_t inode() const { return inode_; }
  // "nginx (pid 1234)": the lowest pid holding the listening socket; empty when none was found.
  const std::string& owner() const { return owner_; }

  // The listener's queues now: accept queue (idiag_rqueue), its maximum (idiag_wqueue, the
  // effective backlog) and the request sockets (SYN-RECV) addressed to it. Records the peak.
  absl::StatusOr<ListenQueue> Query();
  int64_t accept_queue_peak() const { return peak_.load(); }

  // True for a socket of this listener: same port, and the listener's address unless it is a
  // wildcard. The LISTEN socket itself is not one.
  bool Owns(const DiagSocket& socket) const;

 private:
  ObservedListener() = default;

  std::string name_;
  std::string ip_;
  std::string local_;
  uint16_t port_ = 0;
  uint64_t inode_ = 0;
  std::string owner_;
  bool wildcard_ = false;
  bool whole_port_ = false;  // no address asked for: every listener on the port, summed
  std::atomic<int64_t> peak_{0};
};

// The process holding socket inode `inode` ("nginx (pid 1234)", lowest pid), found by reading
// the links in `proc_dir`/*/fd; empty when no process holds it or /proc cannot be read.
std::string SocketOwner(uint64_t inode, const std::string& proc_dir = "/proc");

}  // namespace synq::agent
