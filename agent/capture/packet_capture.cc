#include "agent/capture/packet_capture.h"

#include <pcap/pcap.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace synq::agent {
namespace {

// Enough for SLL2 (20) + IPv6 (40) + TCP with options (60); payload is never needed because
// its length comes from the IP header.
constexpr int kSnapLen = 128;
constexpr int kBufferBytes = 4 << 20;
// The thread also wakes this often to flush the dump, so the file is readable during a run.
constexpr int kPollTimeoutMs = 100;
// Bounds the drain at Stop in case packets keep arriving faster than we read them.
constexpr int kMaxDrainRounds = 1000;

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint8_t kProtoTcp = 6;

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpAck = 0x10;

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Load32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

bool SupportedLinkType(int dlt) {
  return dlt == DLT_EN10MB || dlt == DLT_LINUX_SLL || dlt == DLT_LINUX_SLL2 || dlt == DLT_RAW ||
         dlt == DLT_IPV4 || dlt == DLT_IPV6;
}

// The network header of a frame: where it starts and its EtherType.
struct NetworkHeader {
  size_t offset = 0;
  uint16_t ether_type = 0;
};

std::optional<NetworkHeader> ParseLinkLayer(int dlt, const uint8_t* p, size_t n) {
  switch (dlt) {
    case DLT_EN10MB: {
      if (n < 14) return std::nullopt;
      size_t offset = 14;
      uint16_t type = Load16(p + 12);
      // 802.1Q, 802.1ad and the old QinQ type; a frame can carry a stack of tags.
      for (int tags = 0; type == 0x8100 || type == 0x88a8 || type == 0x9100; ++tags) {
        if (tags == 4 || n < offset + 4) return std::nullopt;
        type = Load16(p + offset + 2);
        offset += 4;
      }
      return NetworkHeader{offset, type};
    }
    case DLT_LINUX_SLL:
      if (n < 16) return std::nullopt;
      return NetworkHeader{16, Load16(p + 14)};
    case DLT_LINUX_SLL2:
      if (n < 20) return std::nullopt;
      return NetworkHeader{20, Load16(p)};
    case DLT_RAW:
      if (n < 1) return std::nullopt;
      return NetworkHeader{0, (p[0] >> 4) == 6 ? kEtherTypeIpv6 : kEtherTypeIpv4};
    case DLT_IPV4:
      return NetworkHeader{0, kEtherTypeIpv4};
    case DLT_IPV6:
      return NetworkHeader{0, kEtherTypeIpv6};
    default:
      return std::nullopt;
  }
}

// What classification needs of one TCP segment.
struct TcpSegment {
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint32_t seq = 0;
  uint8_t flags = 0;
  uint64_t payload = 0;
};

// Parses the TCP header at `p`: `captured` bytes are present, `ip_length` is the segment
// length the IP header claims.
bool ParseTcp(const uint8_t* p, size_t captured, size_t ip_length, TcpSegment& segment) {
  if (captured < 20 || ip_length < 20) return false;
  const size_t header = size_t{p[12]} >> 4 << 2;
  if (header < 20 || header > ip_length) return false;
  segment.src_port = Load16(p);
  segment.dst_port = Load16(p + 2);
  segment.seq = Load32(p + 4);
  segment.flags = p[13];
  segment.payload = ip_length - header;
  return true;
}

std::optional<TcpSegment> ParseIpv4(const uint8_t* p, size_t n) {
  if (n < 20 || (p[0] >> 4) != 4) return std::nullopt;
  const size_t header = (size_t{p[0]} & 0x0f) * 4;
  const size_t total = Load16(p + 2);
  if (header < 20 || n < header || total < header) return std::nullopt;
  if (p[9] != kProtoTcp) return std::nullopt;
  if ((Load16(p + 6) & 0x1fff) != 0) return std::nullopt;  // a later fragment: no TCP header
  TcpSegment segment;
  std::memcpy(segment.src.data(), p + 12, 4);
  std::memcpy(segment.dst.data(), p + 16, 4);
  if (!ParseTcp(p + header, n - header, total - header, segment)) return std::nullopt;
  return segment;
}

std::optional<TcpSegment> ParseIpv6(const uint8_t* p, size_t n) {
  if (n < 40 || (p[0] >> 4) != 6) return std::nullopt;
  const size_t payload_length = Load16(p + 4);
  if (payload_length == 0) return std::nullopt;  // jumbogram or empty: not a handshake packet
  uint8_t next = p[6];
  size_t offset = 40;
  // Walk the extension headers (hop-by-hop, routing, fragment, AH, destination options).
  for (int i = 0; next == 0 || next == 43 || next == 44 || next == 51 || next == 60; ++i) {
    if (i == 8 || n < offset + 8) return std::nullopt;
    size_t length;
    if (next == 44) {
      if ((Load16(p + offset + 2) & 0xfff8) != 0) return std::nullopt;  // a later fragment
      length = 8;
    } else if (next == 51) {
      length = (size_t{p[offset + 1]} + 2) * 4;
    } else {
      length = (size_t{p[offset + 1]} + 1) * 8;
    }
    next = p[offset];
    offset += length;
  }
  if (next != kProtoTcp || n < offset || 40 + payload_length < offset) return std::nullopt;
  TcpSegment segment;
  std::memcpy(segment.src.data(), p + 8, 16);
  std::memcpy(segment.dst.data(), p + 24, 16);
  if (!ParseTcp(p + offset, n - offset, 40 + payload_length - offset, segment)) {
    return std::nullopt;
  }
  return segment;
}

std::optional<TcpSegment> ParseFrame(int dlt, const uint8_t* p, size_t n) {
  const std::optional<NetworkHeader> network = ParseLinkLayer(dlt, p, n);
  if (!network) return std::nullopt;
  if (network->ether_type == kEtherTypeIpv4) {
    return ParseIpv4(p + network->offset, n - network->offset);
  }
  if (network->ether_type == kEtherTypeIpv6) {
    return ParseIpv6(p + network->offset, n - network->offset);
  }
  return std::nullopt;
}

// Counts segments by direction and kind and recognises retransmitted SYNs and SYN-ACKs.
class Classifier {
 public:
  explicit Classifier(const std::vector<uint16_t>& ports) {
    for (uint16_t port : ports) listener_ports_.set(port);
  }

  void Add(int dlt, const uint8_t* p, size_t n, CaptureSummary& summary) {
    const std::optional<TcpSegment> segment = ParseFrame(dlt, p, n);
    if (!segment) {
      ++summary.ignored;
      return;
    }
    PacketCounts* counts;
    if (listener_ports_.test(segment->dst_port)) {
      counts = &summary.to_server;
    } else if (listener_ports_.test(segment->src_port)) {
      counts = &summary.from_server;
    } else {
      ++summary.ignored;
      return;
    }
    ++counts->total;
    const uint8_t flags = segment->flags;
    if (flags & kTcpRst) {
      ++counts->rst;
      return;
    }
    if (flags & kTcpSyn) {
      const bool repeated = !((flags & kTcpAck) ? synacks_ : syns_).insert(Key(*segment)).second;
      if (flags & kTcpAck) {
        ++counts->synack;
        counts->synack_retransmit += repeated;
      } else {
        ++counts->syn;
        counts->syn_retransmit += repeated;
      }
      return;
    }
    if (flags & kTcpFin) ++counts->fin;
    if (segment->payload > 0) {
      ++counts->data;
    } else if ((flags & kTcpAck) && !(flags & kTcpFin)) {
      ++counts->pure_ack;
    }
  }

 private:
  // A 64-bit fingerprint of (addresses, ports, sequence number): a set of these costs a
  // fraction of a set of full keys on a flood of millions of SYNs, and a false "retransmit"
  // needs a 64-bit collision.
  static uint64_t Key(const TcpSegment& s) {
    std::array<uint8_t, 42> bytes;
    std::memcpy(bytes.data(), s.src.data(), 16);
    std::memcpy(bytes.data() + 16, s.dst.data(), 16);
    std::memcpy(bytes.data() + 32, &s.src_port, 2);
    std::memcpy(bytes.data() + 34, &s.dst_port, 2);
    std::memcpy(bytes.data() + 36, &s.seq, 4);
    bytes[40] = bytes[41] = 0;
    return std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }

  std::bitset<65536> listener_ports_;
  std::unordered_set<uint64_t> syns_;
  std::unordered_set<uint64_t> synacks_;
};

std::string BpfFilter(int dlt, const std::vector<uint16_t>& ports) {
  std::string any_port = absl::StrJoin(
      ports, " or ", [](std::string* out, uint16_t port) { absl::StrAppend(out, "port ", port); });
  std::string plain = absl::StrCat("tcp and (", any_port, ")");
  // "vlan" shifts the offsets of what follows it, so the tagged case is a separate clause.
  if (dlt == DLT_EN10MB) return absl::StrCat("(", plain, ") or (vlan and ", plain, ")");
  return plain;
}

absl::Status ActivateError(int rc, const std::string& interface, pcap_t* handle) {
  const std::string summary = pcap_statustostr(rc);
  const std::string detail = pcap_geterr(handle);
  std::string message = absl::StrCat("capture on ", interface, ": ", summary);
  if (!detail.empty() && detail != summary) absl::StrAppend(&message, " (", detail, ")");
  switch (rc) {
    case PCAP_ERROR_NO_SUCH_DEVICE:
      return absl::NotFoundError(message);
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED:
      return absl::PermissionDeniedError(absl::StrCat(message, "; needs CAP_NET_RAW"));
    case PCAP_ERROR_IFACE_NOT_UP:
      return absl::FailedPreconditionError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace

PacketCapture::PacketCapture(std::string interface, std::vector<uint16_t> ports, std::string file)
    : interface_(std::move(interface)), ports_(std::move(ports)), file_(std::move(file)) {}

absl::StatusOr<std::unique_ptr<PacketCapture>> PacketCapture::Start(
    const std::string& interface, const std::vector<uint16_t>& ports, const std::string& file) {
  if (ports.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("capture on ", interface, ": no ports"));
  }
  // From here on the destructor releases whatever was set up.
  std::unique_ptr<PacketCapture> capture(new PacketCapture(interface, ports, file));
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  capture->handle_ = pcap_create(interface.c_str(), errbuf);
  if (capture->handle_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("capture on ", interface, ": ", errbuf));
  }
  pcap_t* handle = capture->handle_;
  pcap_set_snaplen(handle, kSnapLen);
  pcap_set_promisc(handle, 0);
  pcap_set_immediate_mode(handle, 1);  // a SYN is visible at once, not after a buffer fills
  pcap_set_buffer_size(handle, kBufferBytes);
  if (int rc = pcap_activate(handle); rc < 0) return ActivateError(rc, interface, handle);

  const int dlt = pcap_datalink(handle);
  if (!SupportedLinkType(dlt)) {
    const char* name = pcap_datalink_val_to_name(dlt);
    return absl::UnimplementedError(absl::StrCat("capture on ", interface, ": link type ",
                                                 name ? name : absl::StrCat(dlt),
                                                 " is not supported"));
  }
  const std::string filter = BpfFilter(dlt, ports);
  bpf_program program{};
  if (pcap_compile(handle, &program, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    return absl::InternalError(
        absl::StrCat("capture on ", interface, ": filter \"", filter, "\": ", pcap_geterr(handle)));
  }
  const int set = pcap_setfilter(handle, &program);
  pcap_freecode(&program);
  if (set != 0) {
    return absl::UnavailableError(
        absl::StrCat("capture on ", interface, ": set filter: ", pcap_geterr(handle)));
  }
  if (pcap_setnonblock(handle, 1, errbuf) != 0) {
    return absl::UnavailableError(absl::StrCat("capture on ", interface, ": ", errbuf));
  }
  if (pcap_get_selectable_fd(handle) < 0) {
    return absl::UnimplementedError(
        absl::StrCat("capture on ", interface, ": no selectable descriptor"));
  }
  capture->dumper_ = pcap_dump_open(handle, file.c_str());
  if (capture->dumper_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("capture on ", interface, ": open ", file, ": ", pcap_geterr(handle)));
  }
  capture->stop_event_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!capture->stop_event_) return absl::ErrnoToStatus(errno, "eventfd");
  capture->thread_ = std::thread([raw = capture.get()] { raw->Run(); });
  return capture;
}

PacketCapture::~PacketCapture() {
  if (!stopped_) Shutdown().IgnoreError();
}

void PacketCapture::Run() {
  std::array<pollfd, 2> fds{};
  fds[0] = {.fd = pcap_get_selectable_fd(handle_), .events = POLLIN, .revents = 0};
  fds[1] = {.fd = stop_event_.get(), .events = POLLIN, .revents = 0};
  for (;;) {
    const int ready = ::poll(fds.data(), fds.size(), kPollTimeoutMs);
    if (ready < 0) {
      if (errno == EINTR) continue;
      thread_status_ =
          absl::ErrnoToStatus(errno, absl::StrCat("capture on ", interface_, ": poll"));
      return;
    }
    if (fds[1].revents != 0) return;
    // Non-blocking: returns 0 at once when nothing is queued.
    const int rc = pcap_dispatch(handle_, -1, &pcap_dump, reinterpret_cast<u_char*>(dumper_));
    if (rc == PCAP_ERROR) {
      thread_status_ = absl::UnavailableError(
          absl::StrCat("capture on ", interface_, ": ", pcap_geterr(handle_)));
      return;
    }
    if (ready == 0) pcap_dump_flush(dumper_);
  }
}

absl::Status PacketCapture::Shutdown() {
  stopped_ = true;
  absl::Status status;
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (::write(stop_event_.get(), &one, sizeof(one)) != sizeof(one)) {
      status = absl::ErrnoToStatus(errno, "eventfd write");
    }
    thread_.join();
    status.Update(thread_status_);
    // What the kernel put in the ring before Stop belongs to the run.
    for (int round = 0; status.ok() && round < kMaxDrainRounds; ++round) {
      const int rc = pcap_dispatch(handle_, -1, &pcap_dump, reinterpret_cast<u_char*>(dumper_));
      if (rc == 0) break;
      if (rc == PCAP_ERROR) {
        status = absl::UnavailableError(
            absl::StrCat("capture on ", interface_, ": ", pcap_geterr(handle_)));
      }
    }
    pcap_stat stats{};
    if (pcap_stats(handle_, &stats) == 0) dropped_by_kernel_ = stats.ps_drop;
  }
  if (dumper_ != nullptr) {
    if (pcap_dump_flush(dumper_) != 0) {
      status.Update(absl::DataLossError(absl::StrCat("write ", file_, ": ", std::strerror(errno))));
    }
    pcap_dump_close(dumper_);
    dumper_ = nullptr;
  }
  if (handle_ != nullptr) {
    pcap_close(handle_);
    handle_ = nullptr;
  }
  return status;
}

absl::StatusOr<CaptureSummary> PacketCapture::Stop() {
  if (stopped_) {
    return absl::FailedPreconditionError(
        absl::StrCat("capture on ", interface_, " already stopped"));
  }
  RETURN_IF_ERROR(Shutdown());
  ASSIGN_OR_RETURN(CaptureSummary summary, SummarizePcapFile(file_, ports_));
  summary.dropped_by_kernel = dropped_by_kernel_;
  return summary;
}

absl::StatusOr<CaptureSummary> SummarizePcapFile(const std::string& file,
                                                 const std::vector<uint16_t>& ports) {
  if (ports.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("summarize ", file, ": no ports"));
  }
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, decltype(&pcap_close)> handle(pcap_open_offline(file.c_str(), errbuf),
                                                        &pcap_close);
  if (handle == nullptr) {
    struct stat st;
    if (::stat(file.c_str(), &st) != 0 && errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("pcap file ", file, " does not exist"));
    }
    return absl::DataLossError(absl::StrCat("pcap file ", file, ": ", errbuf));
  }
  const int dlt = pcap_datalink(handle.get());
  if (!SupportedLinkType(dlt)) {
    const char* name = pcap_datalink_val_to_name(dlt);
    return absl::UnimplementedError(absl::StrCat(
        "pcap file ", file, ": link type ", name ? name : absl::StrCat(dlt), " is not supported"));
  }
  CaptureSummary summary;
  summary.file = file;
  Classifier classifier(ports);
  for (;;) {
    pcap_pkthdr* header = nullptr;
    const u_char* data = nullptr;
    const int rc = pcap_next_ex(handle.get(), &header, &data);
    if (rc == PCAP_ERROR_BREAK) break;  // end of file
    if (rc != 1) {
      return absl::DataLossError(absl::StrCat("pcap file ", file, ": ", pcap_geterr(handle.get())));
    }
    classifier.Add(dlt, data, header->caplen, summary);
  }
  return summary;
}

std::vector<std::string> PruneCaptures(const std::string& dir, size_t keep) {
  namespace fs = std::filesystem;
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename();
    if (name.rfind("capture-", 0) != 0 || entry.path().extension() != ".pcap") continue;
    if (!entry.is_regular_file(ec)) continue;
    files.emplace_back(entry.last_write_time(ec), entry.path());
  }
  std::vector<std::string> removed;
  if (files.size() <= keep) return removed;
  std::sort(files.begin(), files.end());  // oldest first
  for (size_t i = 0; i + keep < files.size(); ++i) {
    if (fs::remove(files[i].second, ec)) removed.push_back(files[i].second.string());
  }
  return removed;
}

}  // namespace synq::agent
