#include "agent/kernel/sock_diag.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/net_address.h"

namespace synq::agent {
namespace {

// Large enough that the kernel fills each recv with many sockets (ss uses 32 KiB too).
constexpr size_t kRecvBufferSize = 32768;

struct MnlSocketCloser {
  void operator()(mnl_socket* nl) const { mnl_socket_close(nl); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketCloser>;

std::string FormatEndpoint(uint8_t family, const __be32 addr[4], __be16 port) {
  common::SocketAddress out;
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
    v4->sin_family = AF_INET;
    std::memcpy(&v4->sin_addr, addr, sizeof(v4->sin_addr));
    v4->sin_port = port;
    out.length = sizeof(sockaddr_in);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    v6->sin6_family = AF_INET6;
    std::memcpy(&v6->sin6_addr, addr, sizeof(v6->sin6_addr));
    v6->sin6_port = port;
    out.length = sizeof(sockaddr_in6);
  }
  return out.ToString();
}

struct DumpContext {
  uint16_t local_port = 0;
  std::vector<DiagSocket>* out = nullptr;
};

int OnDiagMessage(const nlmsghdr* nlh, void* data) {
  auto* ctx = static_cast<DumpContext*>(data);
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(inet_diag_msg)) return MNL_CB_OK;
  const auto* msg = static_cast<const inet_diag_msg*>(mnl_nlmsg_get_payload(nlh));
  // The kernel filters by id.idiag_sport already; checking again costs nothing and keeps the
  // result right on kernels that ignore it for some tables.
  if (ctx->local_port != 0 && ntohs(msg->id.idiag_sport) != ctx->local_port) return MNL_CB_OK;
  DiagSocket s;
  s.local = FormatEndpoint(msg->idiag_family, msg->id.idiag_src, msg->id.idiag_sport);
  s.remote = FormatEndpoint(msg->idiag_family, msg->id.idiag_dst, msg->id.idiag_dport);
  s.state = msg->idiag_state;
  s.rqueue = msg->idiag_rqueue;
  s.wqueue = msg->idiag_wqueue;
  s.inode = msg->idiag_inode;
  ctx->out->push_back(std::move(s));
  return MNL_CB_OK;
}

absl::Status DumpFamily(mnl_socket* nl, uint8_t family, uint16_t local_port, uint32_t state_mask,
                        std::vector<DiagSocket>* out) {
  alignas(nlmsghdr) char buf[kRecvBufferSize];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  const uint32_t seq = static_cast<uint32_t>(time(nullptr));
  nlh->nlmsg_seq = seq;
  auto* req =
      static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  req->sdiag_family = family;
  req->sdiag_protocol = IPPROTO_TCP;
  // TCPF_SYN_RECV in the mask makes the kernel include request sockets (TCP_NEW_SYN_RECV),
  // which it reports as SYN_RECV.
  req->idiag_states = state_mask;
  req->id.idiag_sport = htons(local_port);
  req->id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
    return absl::ErrnoToStatus(errno, "sock_diag: sendto");
  }
  const unsigned int portid = mnl_socket_get_portid(nl);
  DumpContext ctx{local_port, out};
  while (true) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "sock_diag: recv");
    }
    const int ret = mnl_cb_run(buf, static_cast<size_t>(n), seq, portid, OnDiagMessage, &ctx);
    if (ret == MNL_CB_STOP) return absl::OkStatus();
    if (ret < 0) {
      return absl::ErrnoToStatus(
          errno, absl::StrCat("sock_diag: dump of ", family == AF_INET ? "AF_INET" : "AF_INET6"));
    }
  }
}

}  // namespace

std::string TcpStateName(int state) {
  switch (state) {
    case TCP_ESTABLISHED:
      return "ESTABLISHED";
    case TCP_SYN_SENT:
      return "SYN_SENT";
    case TCP_SYN_RECV:
      return "SYN_RECV";
    case TCP_FIN_WAIT1:
      return "FIN_WAIT1";
    case TCP_FIN_WAIT2:
      return "FIN_WAIT2";
    case TCP_TIME_WAIT:
      return "TIME_WAIT";
    case TCP_CLOSE:
      return "CLOSE";
    case TCP_CLOSE_WAIT:
      return "CLOSE_WAIT";
    case TCP_LAST_ACK:
      return "LAST_ACK";
    case TCP_LISTEN:
      return "LISTEN";
    case TCP_CLOSING:
      return "CLOSING";
    case 12:
      return "NEW_SYN_RECV";  // TCP_NEW_SYN_RECV: kernel-internal, not in netinet/tcp.h
    default:
      return absl::StrCat("UNKNOWN(", state, ")");
  }
}

bool WasAccepted(const DiagSocket& s) {
  if (s.inode != 0) return true;
  switch (s.state) {
    case TCP_FIN_WAIT1:
    case TCP_FIN_WAIT2:
    case TCP_CLOSING:
    case TCP_LAST_ACK:
    case TCP_TIME_WAIT:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::vector<DiagSocket>> DumpTcpSockets(uint16_t local_port, uint32_t state_mask) {
  // Opened per call, in the calling thread's network namespace.
  MnlSocket nl(mnl_socket_open(NETLINK_SOCK_DIAG));
  if (!nl) return absl::ErrnoToStatus(errno, "sock_diag: socket(NETLINK_SOCK_DIAG)");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::ErrnoToStatus(errno, "sock_diag: bind");
  }
  std::vector<DiagSocket> out;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    absl::Status status = DumpFamily(nl.get(), family, local_port, state_mask, &out);
    // A kernel built without IPv6 has no AF_INET6 diag handler: treat as no sockets.
    if (!status.ok() && family == AF_INET6 && absl::IsNotFound(status)) continue;
    if (!status.ok()) return status;
  }
  return out;
}

absl::StatusOr<ListenQueue> QueryListenQueue(uint16_t local_port) {
  absl::StatusOr<std::vector<DiagSocket>> sockets =
      DumpTcpSockets(local_port, (1u << TCP_LISTEN) | (1u << TCP_SYN_RECV));
  if (!sockets.ok()) return sockets.status();
  ListenQueue q;
  bool listening = false;
  for (const DiagSocket& s : *sockets) {
    if (s.state == TCP_LISTEN) {
      // Several listeners on one port (IPv4 + IPv6, SO_REUSEPORT) add up: together they are
      // the port's accept capacity.
      listening = true;
      q.accept_queue += s.rqueue;
      q.accept_queue_max += s.wqueue;
    } else if (s.state == TCP_SYN_RECV) {
      ++q.syn_recv;
    }
  }
  if (!listening) {
    return absl::NotFoundError(absl::StrCat("no TCP socket listens on port ", local_port));
  }
  return q;
}

}  // namespace synq::agent
