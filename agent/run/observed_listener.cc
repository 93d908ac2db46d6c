#include "agent/run/observed_listener.h"

#include <netinet/tcp.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/net_address.h"

namespace synq::agent {
namespace {

namespace fs = std::filesystem;

// The address part of "ip:port" / "[v6]:port"; the text itself when it does not parse.
std::string HostOf(const std::string& endpoint) {
  absl::StatusOr<common::SocketAddress> parsed = common::ParseSocketAddress(endpoint);
  return parsed.ok() ? parsed->HostString() : endpoint;
}

bool IsWildcard(const std::string& ip) { return ip == "0.0.0.0" || ip == "::"; }

}  // namespace

absl::StatusOr<ObservedListener> ObservedListener::Find(const std::string& name, uint16_t port,
                                                        const std::string& address) {
  if (port == 0) return absl::InvalidArgumentError("port: must be 1..65535");
  std::string want;
  if (!address.empty()) {
    absl::StatusOr<common::SocketAddress> parsed = common::ParseHostAddress(address, port);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("address: ", parsed.status().message()));
    }
    want = parsed->HostString();  // "::0" and "::" compare equal from here on
  }
  absl::StatusOr<std::vector<DiagSocket>> sockets = DumpTcpSockets(port, 1u << TCP_LISTEN);
  if (!sockets.ok()) return sockets.status();
  const DiagSocket* picked = nullptr;
  std::vector<std::string> others;
  for (const DiagSocket& s : *sockets) {
    if (s.state != TCP_LISTEN) continue;
    if (!want.empty() && HostOf(s.local) != want) {
      others.push_back(s.local);
      continue;
    }
    if (picked == nullptr || s.inode < picked->inode) picked = &s;
  }
  if (picked == nullptr) {
    const std::string where = want.empty()
                                  ? absl::StrCat("port ", port)
                                  : common::ParseHostAddress(want, port).value().ToString();
    std::string message = absl::StrCat("nothing listens on ", where, " on this host");
    if (!others.empty()) {
      absl::StrAppend(&message, " (listening on this port: ", absl::StrJoin(others, ", "), ")");
    }
    return absl::NotFoundError(message);
  }
  ObservedListener out;
  out.name_ = name;
  out.local_ = picked->local;
  out.ip_ = HostOf(picked->local);
  out.port_ = port;
  out.inode_ = picked->inode;
  out.wildcard_ = IsWildcard(out.ip_);
  out.whole_port_ = want.empty();
  out.owner_ = SocketOwner(picked->inode);
  return out;
}

ObservedListener::ObservedListener(const ObservedListener& other)
    : name_(other.name_),
      ip_(other.ip_),
      local_(other.local_),
      port_(other.port_),
      inode_(other.inode_),
      owner_(other.owner_),
      wildcard_(other.wildcard_),
      whole_port_(other.whole_port_),
      peak_(other.peak_.load()) {}

bool ObservedListener::Owns(const DiagSocket& socket) const {
  if (socket.state == TCP_LISTEN) return false;
  if (whole_port_ || wildcard_) return true;
  return HostOf(socket.local) == ip_;
}

absl::StatusOr<ListenQueue> ObservedListener::Query() {
  // Without an address the whole port is the listener, summed like synq's own listeners
  // (QueryListenQueue): IPv4 and IPv6 sockets, SO_REUSEPORT groups.
  absl::StatusOr<ListenQueue> queue = [&]() -> absl::StatusOr<ListenQueue> {
    if (whole_port_) return QueryListenQueue(port_);
    absl::StatusOr<std::vector<DiagSocket>> sockets =
        DumpTcpSockets(port_, (1u << TCP_LISTEN) | (1u << TCP_SYN_RECV));
    if (!sockets.ok()) return sockets.status();
    ListenQueue q;
    bool listening = false;
    for (const DiagSocket& s : *sockets) {
      if (s.state == TCP_LISTEN && HostOf(s.local) == ip_) {
        listening = true;
        q.accept_queue += s.rqueue;
        q.accept_queue_max += s.wqueue;
      } else if (s.state == TCP_SYN_RECV && Owns(s)) {
        ++q.syn_recv;
      }
    }
    if (!listening) return absl::NotFoundError(absl::StrCat("nothing listens on ", local_));
    return q;
  }();
  if (queue.ok()) {
    int64_t seen = peak_.load();
    while (queue->accept_queue > seen && !peak_.compare_exchange_weak(seen, queue->accept_queue)) {
    }
  }
  return queue;
}

std::string SocketOwner(uint64_t inode, const std::string& proc_dir) {
  if (inode == 0) return "";
  const std::string want = absl::StrCat("socket:[", inode, "]");
  std::error_code ec;
  fs::directory_iterator procs(proc_dir, ec);
  if (ec) return "";
  int best = std::numeric_limits<int>::max();
  // increment(ec), not range-for: a process that exits mid-walk must not throw.
  for (; !ec && procs != fs::directory_iterator(); procs.increment(ec)) {
    int pid = 0;
    if (!absl::SimpleAtoi(procs->path().filename().string(), &pid) || pid >= best) continue;
    std::error_code fd_ec;
    fs::directory_iterator fds(procs->path() / "fd", fd_ec);
    for (; !fd_ec && fds != fs::directory_iterator(); fds.increment(fd_ec)) {
      std::error_code link_ec;
      const fs::path target = fs::read_symlink(fds->path(), link_ec);
      if (!link_ec && target.native() == want) {
        best = pid;
        break;
      }
    }
  }
  if (best == std::numeric_limits<int>::max()) return "";
  std::ifstream comm(absl::StrCat(proc_dir, "/", best, "/comm"));
  std::string name;
  std::getline(comm, name);
  absl::StripTrailingAsciiWhitespace(&name);
  return absl::StrCat(name.empty() ? absl::string_view("?") : absl::string_view(name), " (pid ",
                      best, ")");
}

}  // namespace synq::agent
