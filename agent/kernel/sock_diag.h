// TCP socket state from the kernel over NETLINK_SOCK_DIAG (what `ss` shows), via libmnl.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace synq::agent {

// One TCP socket as inet_diag reports it.
struct DiagSocket {
  std::string local;    // "ip:port"
  std::string remote;   // "ip:port"
  int state = 0;        // TCP_ESTABLISHED, TCP_SYN_RECV, TCP_LISTEN ... (netinet/tcp.h)
  uint32_t rqueue = 0;  // LISTEN: accept-queue depth; otherwise bytes in the receive queue
  uint32_t wqueue = 0;  // LISTEN: accept-queue maximum (the effective backlog)
  uint64_t inode = 0;   // 0 while no process holds it: queued, request, or orphaned
};

// Whether a server-side (child) socket of a listener was taken off the accept queue. A socket
// still in the queue has no struct socket, so inode 0; accept() grafts one (inode != 0). An
// accepted socket its owner closed is orphaned (inode 0 again) but only an owner's close puts it
// in FIN_WAIT1/FIN_WAIT2/CLOSING/LAST_ACK/TIME_WAIT: a queued socket cannot get there (the
// client's FIN leaves it in CLOSE_WAIT). Sockets already gone cannot be told apart.
bool WasAccepted(const DiagSocket& s);

// Name of a TCP state as ss prints it ("ESTABLISHED", "SYN_RECV", "LISTEN", ...).
std::string TcpStateName(int state);

// Every IPv4 and IPv6 TCP socket of the calling thread's network namespace whose local port is
// `local_port` (0 = all ports), in the states of `state_mask` (bit 1<<TCP_x; default all),
// request sockets (SYN_RECV) included.
absl::StatusOr<std::vector<DiagSocket>> DumpTcpSockets(uint16_t local_port,
                                                       uint32_t state_mask = ~0u);

// The queues of one listening socket.
struct ListenQueue {
  int64_t accept_queue = 0;      // idiag_rqueue
  int64_t accept_queue_max = 0;  // idiag_wqueue (= min(backlog, somaxconn) as the kernel set it)
  int64_t syn_recv = 0;          // request sockets on this port
};

// The LISTEN socket bound to `local_port` (any address) and its SYN_RECV count. NotFound when
// nothing listens there. Several listeners on the port (IPv4 and IPv6, SO_REUSEPORT) are summed.
absl::StatusOr<ListenQueue> QueryListenQueue(uint16_t local_port);

}  // namespace synq::agent
