#include "agent/shaping/netem_netlink.h"

#include <libmnl/libmnl.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace synq::agent {
namespace {

constexpr char kNetemKind[] = "netem";
// Room for any rtnetlink answer; dumps size their messages to what the reader offers.
constexpr size_t kReceiveBuffer = 32768;

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

nlmsghdr* PutTcHeader(std::span<uint8_t> buf, uint16_t type, uint16_t flags, uint32_t seq,
                      int ifindex, uint32_t handle, uint32_t parent) {
  std::fill(buf.begin(), buf.end(), 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  auto* tcm = static_cast<tcmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(tcmsg)));
  tcm->tcm_family = AF_UNSPEC;
  tcm->tcm_ifindex = ifindex;
  tcm->tcm_handle = handle;
  tcm->tcm_parent = parent;
  return nlh;
}

std::span<const uint8_t> MessageOf(std::span<uint8_t> buf, const nlmsghdr* nlh) {
  return {buf.data(), nlh->nlmsg_len};
}

uint32_t NsToTicks(uint64_t ns) {
  return static_cast<uint32_t>(
      std::min<uint64_t>(ns >> kPschedShift, std::numeric_limits<uint32_t>::max()));
}

// Attributes of the top level of an RTM_NEWQDISC; the callback keeps the last of each type.
struct AttrTable {
  const nlattr* at[TCA_MAX + 1] = {};
};
int CollectTcAttr(const nlattr* attr, void* data) {
  auto* table = static_cast<AttrTable*>(data);
  const int type = mnl_attr_get_type(attr);
  if (type >= 0 && type <= TCA_MAX) table->at[type] = attr;
  return MNL_CB_OK;
}
struct NetemAttrTable {
  const nlattr* at[TCA_NETEM_MAX + 1] = {};
};
int CollectNetemAttr(const nlattr* attr, void* data) {
  auto* table = static_cast<NetemAttrTable*>(data);
  const int type = mnl_attr_get_type(attr);
  if (type >= 0 && type <= TCA_NETEM_MAX) table->at[type] = attr;
  return MNL_CB_OK;
}

absl::StatusOr<NetemParams> ParseNetemOptions(const nlattr* options) {
  const auto* payload = static_cast<const uint8_t*>(mnl_attr_get_payload(options));
  const size_t len = mnl_attr_get_payload_len(options);
  if (len < sizeof(tc_netem_qopt)) {
    return absl::InvalidArgumentError(
        absl::StrCat("netem TCA_OPTIONS has ", len, " bytes, less than tc_netem_qopt"));
  }
  tc_netem_qopt qopt;
  std::memcpy(&qopt, payload, sizeof(qopt));
  NetemParams params;
  params.latency_ns = static_cast<uint64_t>(qopt.latency) << kPschedShift;
  params.jitter_ns = static_cast<uint64_t>(qopt.jitter) << kPschedShift;
  params.limit = qopt.limit;
  params.loss = qopt.loss;

  // Like the kernel's parse_attr(): attributes follow the struct at its aligned size.
  const size_t offset = MNL_ALIGN(sizeof(tc_netem_qopt));
  NetemAttrTable tb;
  if (len > offset &&
      mnl_attr_parse_payload(payload + offset, len - offset, CollectNetemAttr, &tb) < 0) {
    return absl::InvalidArgumentError("malformed netem attributes");
  }
  auto u64 = [](const nlattr* a, uint64_t* out) {
    if (a == nullptr) return absl::OkStatus();
    if (mnl_attr_get_payload_len(a) < sizeof(uint64_t)) {
      return absl::InvalidArgumentError(
          absl::StrCat("netem attribute ", mnl_attr_get_type(a), " shorter than u64"));
    }
    std::memcpy(out, mnl_attr_get_payload(a), sizeof(uint64_t));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(u64(tb.at[TCA_NETEM_LATENCY64], &params.latency_ns));
  RETURN_IF_ERROR(u64(tb.at[TCA_NETEM_JITTER64], &params.jitter_ns));
  if (const nlattr* rate = tb.at[TCA_NETEM_RATE]; rate != nullptr) {
    if (mnl_attr_get_payload_len(rate) < sizeof(tc_netem_rate)) {
      return absl::InvalidArgumentError("TCA_NETEM_RATE shorter than tc_netem_rate");
    }
    tc_netem_rate r;
    std::memcpy(&r, mnl_attr_get_payload(rate), sizeof(r));
    params.rate_bytes_per_second = r.rate;
  }
  uint64_t rate64 = 0;
  RETURN_IF_ERROR(u64(tb.at[TCA_NETEM_RATE64], &rate64));
  params.rate_bytes_per_second = std::max(params.rate_bytes_per_second, rate64);
  return params;
}

std::string ExtackMessage(const nlmsghdr* nlh) {
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return "";
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  size_t offset = sizeof(nlmsgerr);
  if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0) offset += err->msg.nlmsg_len - NLMSG_HDRLEN;
  struct Found {
    std::string message;
  } found;
  mnl_attr_parse(
      nlh, static_cast<unsigned int>(offset),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
            mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
          static_cast<Found*>(data)->message = mnl_attr_get_str(attr);
        }
        return MNL_CB_OK;
      },
      &found);
  return found.message;
}

absl::StatusOr<MnlSocket> OpenRtnl() {
  MnlSocket nl(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC));
  if (!nl) return absl::ErrnoToStatus(errno, "socket(NETLINK_ROUTE)");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::ErrnoToStatus(errno, "bind(NETLINK_ROUTE)");
  }
  int one = 1;
  // Best effort: the kernel's reason ("Specified qdisc kind is unknown") and short acks.
  mnl_socket_setsockopt(nl.get(), NETLINK_EXT_ACK, &one, sizeof(one));
  mnl_socket_setsockopt(nl.get(), NETLINK_CAP_ACK, &one, sizeof(one));
  return nl;
}

// The kernel's errno for a request (0 = acknowledged), with its extended-ack text.
struct KernelAnswer {
  int error = 0;
  std::string message;
};

absl::StatusOr<KernelAnswer> Transact(mnl_socket* nl, std::span<const uint8_t> msg) {
  const auto* req = reinterpret_cast<const nlmsghdr*>(msg.data());
  if (mnl_socket_sendto(nl, msg.data(), msg.size()) < 0) {
    return absl::ErrnoToStatus(errno, "send rtnetlink");
  }
  const unsigned int portid = mnl_socket_get_portid(nl);
  std::vector<uint8_t> buf(kReceiveBuffer);
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "recv rtnetlink");
    }
    int remaining = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, remaining);
         nlh = mnl_nlmsg_next(nlh, &remaining)) {
      if (nlh->nlmsg_seq != req->nlmsg_seq || (nlh->nlmsg_pid != 0 && nlh->nlmsg_pid != portid)) {
        continue;
      }
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        return KernelAnswer{-err->error, ExtackMessage(nlh)};
      }
    }
  }
}

std::string Describe(const KernelAnswer& answer) {
  std::string text = std::strerror(answer.error);
  if (!answer.message.empty()) absl::StrAppend(&text, " (", answer.message, ")");
  return text;
}

}  // namespace

uint32_t LossPercentToProbability(double percent) {
  const double clamped = std::clamp(percent, 0.0, 100.0);
  return static_cast<uint32_t>(
      std::llround(clamped / 100.0 * std::numeric_limits<uint32_t>::max()));
}

double LossProbabilityToPercent(uint32_t probability) {
  return 100.0 * probability / std::numeric_limits<uint32_t>::max();
}

NetemParams NetemParamsFrom(const ShapingRequest& request) {
  NetemParams params;
  params.latency_ns = static_cast<uint64_t>(std::max<int64_t>(0, request.delay.count()));
  params.jitter_ns = static_cast<uint64_t>(std::max<int64_t>(0, request.jitter.count()));
  params.loss = LossPercentToProbability(request.loss_percent);
  params.rate_bytes_per_second = request.rate_bits_per_second / 8;
  return params;
}

std::span<const uint8_t> BuildNetemAdd(std::span<uint8_t> buf, int ifindex,
                                       const NetemParams& params, uint32_t seq) {
  nlmsghdr* nlh =
      PutTcHeader(buf, RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq,
                  ifindex, kNetemHandle, TC_H_ROOT);
  mnl_attr_put_strz(nlh, TCA_KIND, kNetemKind);

  tc_netem_qopt qopt{};
  // Kernels before 4.15 only read the tick fields; newer ones prefer the 64-bit attributes.
  qopt.latency = NsToTicks(params.latency_ns);
  qopt.jitter = NsToTicks(params.jitter_ns);
  qopt.limit = params.limit;
  qopt.loss = params.loss;
  // Not mnl_attr_nest_start: netem's TCA_OPTIONS is a struct followed by attributes, without
  // NLA_F_NESTED, exactly as tc and the kernel's own dump lay it out.
  auto* options = static_cast<nlattr*>(mnl_nlmsg_get_payload_tail(nlh));
  mnl_attr_put(nlh, TCA_OPTIONS, sizeof(qopt), &qopt);
  mnl_attr_put_u64(nlh, TCA_NETEM_LATENCY64, params.latency_ns);
  mnl_attr_put_u64(nlh, TCA_NETEM_JITTER64, params.jitter_ns);
  if (params.rate_bytes_per_second > 0) {
    tc_netem_rate rate{};
    rate.rate = static_cast<uint32_t>(
        std::min<uint64_t>(params.rate_bytes_per_second, std::numeric_limits<uint32_t>::max()));
    mnl_attr_put(nlh, TCA_NETEM_RATE, sizeof(rate), &rate);
    if (params.rate_bytes_per_second > std::numeric_limits<uint32_t>::max()) {
      mnl_attr_put_u64(nlh, TCA_NETEM_RATE64, params.rate_bytes_per_second);
    }
  }
  options->nla_len = static_cast<uint16_t>(static_cast<uint8_t*>(mnl_nlmsg_get_payload_tail(nlh)) -
                                           reinterpret_cast<uint8_t*>(options));
  return MessageOf(buf, nlh);
}

std::span<const uint8_t> BuildRootQdiscDelete(std::span<uint8_t> buf, int ifindex, uint32_t handle,
                                              uint32_t seq) {
  const nlmsghdr* nlh =
      PutTcHeader(buf, RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK, seq, ifindex, handle, TC_H_ROOT);
  return MessageOf(buf, nlh);
}

std::span<const uint8_t> BuildQdiscDump(std::span<uint8_t> buf, uint32_t seq) {
  const nlmsghdr* nlh = PutTcHeader(buf, RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, seq, 0, 0, 0);
  return MessageOf(buf, nlh);
}

absl::StatusOr<QdiscInfo> ParseQdisc(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != RTM_NEWQDISC) {
    return absl::InvalidArgumentError(absl::StrCat("not RTM_NEWQDISC: type ", nlh->nlmsg_type));
  }
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(tcmsg))) {
    return absl::InvalidArgumentError("RTM_NEWQDISC shorter than tcmsg");
  }
  const auto* tcm = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(nlh));
  QdiscInfo info;
  info.ifindex = tcm->tcm_ifindex;
  info.handle = tcm->tcm_handle;
  info.parent = tcm->tcm_parent;
  AttrTable tb;
  if (mnl_attr_parse(nlh, sizeof(tcmsg), CollectTcAttr, &tb) < 0) {
    return absl::InvalidArgumentError("malformed qdisc attributes");
  }
  if (tb.at[TCA_KIND] != nullptr) {
    if (mnl_attr_validate(tb.at[TCA_KIND], MNL_TYPE_NUL_STRING) < 0) {
      return absl::InvalidArgumentError("TCA_KIND is not a string");
    }
    info.kind = mnl_attr_get_str(tb.at[TCA_KIND]);
  }
  if (info.kind == kNetemKind) {
    if (tb.at[TCA_OPTIONS] == nullptr) return absl::InvalidArgumentError("netem without options");
    ASSIGN_OR_RETURN(info.netem, ParseNetemOptions(tb.at[TCA_OPTIONS]));
  }
  return info;
}

absl::Status InstallNetem(int ifindex, const NetemParams& params) {
  ASSIGN_OR_RETURN(MnlSocket nl, OpenRtnl());
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  ASSIGN_OR_RETURN(KernelAnswer answer, Transact(nl.get(), BuildNetemAdd(buf, ifindex, params, 1)));
  switch (answer.error) {
    case 0:
      return absl::OkStatus();
    case ENOENT:
    case EOPNOTSUPP:
      return absl::FailedPreconditionError("sch_netem not in this kernel: " + Describe(answer));
    case EEXIST:
      return absl::AlreadyExistsError("interface already has a root qdisc, not replacing it: " +
                                      Describe(answer));
    default:
      return absl::ErrnoToStatus(answer.error, "RTM_NEWQDISC netem: " + answer.message);
  }
}

absl::Status RemoveNetem(int ifindex) {
  ASSIGN_OR_RETURN(MnlSocket nl, OpenRtnl());
  alignas(8) uint8_t buf[kNetemMessageBuffer];
  ASSIGN_OR_RETURN(KernelAnswer answer,
                   Transact(nl.get(), BuildRootQdiscDelete(buf, ifindex, kNetemHandle, 1)));
  switch (answer.error) {
    case 0:
      return absl::OkStatus();
    // No root qdisc of ours (EINVAL: the root has another handle), or no such interface.
    case ENOENT:
    case EINVAL:
    case ENODEV:
      return absl::NotFoundError("no synq netem root qdisc: " + Describe(answer));
    default:
      return absl::ErrnoToStatus(answer.error, "RTM_DELQDISC: " + answer.message);
  }
}

absl::StatusOr<std::vector<QdiscInfo>> ListQdiscs(int ifindex) {
  ASSIGN_OR_RETURN(MnlSocket nl, OpenRtnl());
  alignas(8) uint8_t req[kNetemMessageBuffer];
  const uint32_t seq = 1;
  auto msg = BuildQdiscDump(req, seq);
  if (mnl_socket_sendto(nl.get(), msg.data(), msg.size()) < 0) {
    return absl::ErrnoToStatus(errno, "send RTM_GETQDISC");
  }
  struct Collected {
    int ifindex;
    std::vector<QdiscInfo> qdiscs;
    absl::Status status;
  } collected{ifindex, {}, absl::OkStatus()};
  std::vector<uint8_t> buf(kReceiveBuffer);
  const unsigned int portid = mnl_socket_get_portid(nl.get());
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "recv RTM_GETQDISC");
    }
    const int ret = mnl_cb_run(
        buf.data(), static_cast<size_t>(n), seq, portid,
        [](const nlmsghdr* nlh, void* data) {
          auto* c = static_cast<Collected*>(data);
          auto info = ParseQdisc(nlh);
          if (!info.ok()) {
            c->status = info.status();
            return MNL_CB_ERROR;
          }
          if (info->ifindex == c->ifindex) c->qdiscs.push_back(*std::move(info));
          return MNL_CB_OK;
        },
        &collected);
    if (ret == MNL_CB_STOP) break;
    if (ret < 0) {
      if (!collected.status.ok()) return collected.status;
      return absl::ErrnoToStatus(errno, "RTM_GETQDISC dump");
    }
  }
  return std::move(collected.qdiscs);
}

BackendSupport ProbeNetemInPrivateNamespace() {
  BackendSupport support;
  // A thread's network namespace is its own (CLONE_NEWNET is per task): the probe unshares on a
  // short-lived thread, so the throwaway namespace dies with the thread and its socket, and the
  // host's interfaces are never touched. Correct on hosts with and without sch_netem.
  std::thread([&support] {
    if (::unshare(CLONE_NEWNET) != 0) {
      const int err = errno;
      // Without CAP_SYS_ADMIN: a loaded module is the best evidence left.
      struct stat st;
      if (::stat("/sys/module/sch_netem", &st) == 0) {
        support = {true, "sch_netem module loaded (not probed: unshare failed)"};
      } else {
        support = {false, absl::StrCat("cannot probe sch_netem: unshare(CLONE_NEWNET): ",
                                       std::strerror(err))};
      }
      return;
    }
    const int lo = static_cast<int>(::if_nametoindex("lo"));
    if (lo == 0) {
      support = {false, "cannot probe sch_netem: no lo in a new namespace"};
      return;
    }
    NetemParams params;
    params.latency_ns = 1000000;
    absl::Status status = InstallNetem(lo, params);
    if (status.ok()) {
      support = {true, ""};
    } else if (absl::IsFailedPrecondition(status)) {
      support = {false, "sch_netem not in this kernel"};
    } else {
      support = {false, absl::StrCat("cannot probe sch_netem: ", status.message())};
    }
  }).join();
  return support;
}

}  // namespace synq::agent
