// Proves SummarizePcapFile counts SYNs, SYN-ACKs, their retransmits, pure ACKs, data, FINs and
// RSTs per direction for hand-built Ethernet/VLAN/SLL/SLL2/raw IPv4 and IPv6 frames, ignores what
// is not TCP on a listener port or cut short, and names the file in its errors; and that a live
// PacketCapture on loopback (in a private network namespace) sees a full accept queue drop SYNs.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/capture/packet_capture.h"
#include "common/unique_fd.h"

namespace synq::agent {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Bytes = std::vector<uint8_t>;

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
constexpr uint16_t kServerPort = 8080;

void Put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void Put32(Bytes& b, size_t at, uint32_t v) {
  Put16(b, at, static_cast<uint16_t>(v >> 16));
  Put16(b, at + 2, static_cast<uint16_t>(v));
}

// A TCP segment; checksums are left zero (nothing here verifies them).
struct Segment {
  const char* src;
  uint16_t src_port;
  const char* dst;
  uint16_t dst_port;
  uint32_t seq;
  uint8_t flags;
  size_t payload = 0;
};

Bytes Tcp(const Segment& s) {
  Bytes b(20 + s.payload, 0xab);
  Put16(b, 0, s.src_port);
  Put16(b, 2, s.dst_port);
  Put32(b, 4, s.seq);
  Put32(b, 8, 0);
  b[12] = 5 << 4;
  b[13] = s.flags;
  Put16(b, 14, 65535);
  Put16(b, 16, 0);
  Put16(b, 18, 0);
  return b;
}

Bytes Ipv4(const Segment& s, uint8_t protocol = 6, uint16_t fragment = 0) {
  Bytes tcp = Tcp(s);
  Bytes b(20, 0);
  b[0] = 0x45;
  Put16(b, 2, static_cast<uint16_t>(20 + tcp.size()));
  Put16(b, 6, fragment);
  b[8] = 64;
  b[9] = protocol;
  EXPECT_EQ(inet_pton(AF_INET, s.src, &b[12]), 1);
  EXPECT_EQ(inet_pton(AF_INET, s.dst, &b[16]), 1);
  b.insert(b.end(), tcp.begin(), tcp.end());
  return b;
}

// IPv6, optionally with an 8-byte hop-by-hop options header before TCP.
Bytes Ipv6(const Segment& s, bool hop_by_hop = false) {
  Bytes tcp = Tcp(s);
  Bytes b(40, 0);
  b[0] = 0x60;
  Put16(b, 4, static_cast<uint16_t>(tcp.size() + (hop_by_hop ? 8 : 0)));
  b[6] = hop_by_hop ? 0 : 6;
  b[7] = 64;
  EXPECT_EQ(inet_pton(AF_INET6, s.src, &b[8]), 1);
  EXPECT_EQ(inet_pton(AF_INET6, s.dst, &b[24]), 1);
  if (hop_by_hop) {
    Bytes ext = {6, 0, 1, 4, 0, 0, 0, 0};  // next = TCP, length 0 (8 bytes), PadN
    b.insert(b.end(), ext.begin(), ext.end());
  }
  b.insert(b.end(), tcp.begin(), tcp.end());
  return b;
}

// Ethernet II, optionally 802.1Q-tagged, padded to the 60-byte minimum like a real NIC would.
Bytes Ethernet(const Bytes& payload, uint16_t ether_type, std::optional<uint16_t> vlan = {}) {
  Bytes b(12, 0);
  b[5] = 1;
  b[11] = 2;
  if (vlan) {
    b.resize(16);
    Put16(b, 12, 0x8100);
    Put16(b, 14, *vlan);
  }
  b.resize(b.size() + 2);
  Put16(b, b.size() - 2, ether_type);
  b.insert(b.end(), payload.begin(), payload.end());
  if (b.size() < 60) b.resize(60, 0);
  return b;
}

Bytes EthIpv4(const Segment& s) { return Ethernet(Ipv4(s), 0x0800); }

// Linux cooked v1 (16 bytes, protocol last) and v2 (20 bytes, protocol first).
Bytes Sll(const Bytes& payload, uint16_t protocol) {
  Bytes b(16, 0);
  Put16(b, 14, protocol);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}
Bytes Sll2(const Bytes& payload, uint16_t protocol) {
  Bytes b(20, 0);
  Put16(b, 0, protocol);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// One record; `captured` below the frame size simulates the snap length cutting it.
struct Frame {
  Bytes bytes;
  std::optional<size_t> captured;
};

class PcapFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "synq-capture-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::string Write(const std::string& name, int dlt, const std::vector<Frame>& frames) {
    const std::string path = Path(name);
    pcap_t* dead = pcap_open_dead(dlt, 65535);
    pcap_dumper_t* dumper = pcap_dump_open(dead, path.c_str());
    EXPECT_NE(dumper, nullptr) << pcap_geterr(dead);
    uint32_t usec = 0;
    for (const Frame& frame : frames) {
      pcap_pkthdr header{};
      header.ts.tv_sec = 1700000000;
      header.ts.tv_usec = usec += 10;
      header.len = static_cast<uint32_t>(frame.bytes.size());
      header.caplen = static_cast<uint32_t>(frame.captured.value_or(frame.bytes.size()));
      pcap_dump(reinterpret_cast<u_char*>(dumper), &header, frame.bytes.data());
    }
    pcap_dump_close(dumper);
    pcap_close(dead);
    return path;
  }

  std::filesystem::path dir_;
};

// Client 10.0.0.1 talks to the server 10.0.0.2:8080.
constexpr const char* kClient = "10.0.0.1";
constexpr const char* kServer = "10.0.0.2";

TEST_F(PcapFileTest, CountsHandshakeKindsAndRetransmitsPerDirection) {
  const std::string path = Write(
      "handshake.pcap", DLT_EN10MB,
      {
          {EthIpv4({kClient, 40000, kServer, kServerPort, 100, kSyn})},
          {EthIpv4({kClient, 40000, kServer, kServerPort, 100, kSyn})},  // retransmit: same ISN
          {EthIpv4({kClient, 40001, kServer, kServerPort, 100, kSyn})},  // other tuple: new
          {EthIpv4({kClient, 40000, kServer, kServerPort, 777, kSyn})},  // new ISN: new attempt
          {EthIpv4({kServer, kServerPort, kClient, 40000, 500, kSyn | kAck})},
          {EthIpv4({kServer, kServerPort, kClient, 40000, 500, kSyn | kAck})},  // retransmit
          {EthIpv4({kClient, 40000, kServer, kServerPort, 101, kAck})},  // completes handshake
          {EthIpv4({kClient, 40000, kServer, kServerPort, 101, kAck | kPsh, 10})},
          {EthIpv4({kServer, kServerPort, kClient, 40000, 501, kAck})},
          {EthIpv4({kClient, 40000, kServer, kServerPort, 111, kFin | kAck})},
          {EthIpv4({kServer, kServerPort, kClient, 40001, 0, kRst | kAck})},
      });
  auto summary = SummarizePcapFile(path, {kServerPort});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->file, path);
  const PacketCounts& to = summary->to_server;
  EXPECT_EQ(to.syn, 4u);
  EXPECT_EQ(to.syn_retransmit, 1u);
  EXPECT_EQ(to.synack, 0u);
  EXPECT_EQ(to.pure_ack, 1u);  // the padded 60-byte frame carries no payload
  EXPECT_EQ(to.data, 1u);
  EXPECT_EQ(to.fin, 1u);
  EXPECT_EQ(to.rst, 0u);
  EXPECT_EQ(to.total, 7u);
  const PacketCounts& from = summary->from_server;
  EXPECT_EQ(from.syn, 0u);
  EXPECT_EQ(from.synack, 2u);
  EXPECT_EQ(from.synack_retransmit, 1u);
  EXPECT_EQ(from.pure_ack, 1u);
  EXPECT_EQ(from.rst, 1u);
  EXPECT_EQ(from.data, 0u);
  EXPECT_EQ(from.total, 4u);
  EXPECT_EQ(summary->ignored, 0u);
  EXPECT_EQ(summary->dropped_by_kernel, 0u);
}

TEST_F(PcapFileTest, DecodesIpv6ExtensionHeadersAndVlanTags) {
  const std::string path =
      Write("v6.pcap", DLT_EN10MB,
            {
                {Ethernet(Ipv6({"fd00::1", 40000, "fd00::2", kServerPort, 9, kSyn}), 0x86dd)},
                {Ethernet(Ipv6({"fd00::1", 40000, "fd00::2", kServerPort, 9, kSyn}), 0x86dd)},
                {Ethernet(Ipv6({"fd00::2", kServerPort, "fd00::1", 40000, 70, kSyn | kAck}, true),
                          0x86dd)},
                {Ethernet(Ipv4({kClient, 40002, kServer, kServerPort, 5, kSyn}), 0x0800, 42)},
            });
  auto summary = SummarizePcapFile(path, {kServerPort});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->to_server.syn, 3u);
  EXPECT_EQ(summary->to_server.syn_retransmit, 1u);
  EXPECT_EQ(summary->from_server.synack, 1u);
  EXPECT_EQ(summary->ignored, 0u);
}

TEST_F(PcapFileTest, DecodesLinuxCookedAndRawLinkTypes) {
  const Segment syn{kClient, 40000, kServer, kServerPort, 1, kSyn};
  const Segment synack{kServer, kServerPort, kClient, 40000, 2, kSyn | kAck};
  const Segment syn6{"::1", 40000, "::1", kServerPort, 3, kSyn};
  const std::vector<std::pair<int, std::vector<Frame>>> files = {
      {DLT_LINUX_SLL,
       {{Sll(Ipv4(syn), 0x0800)}, {Sll(Ipv4(synack), 0x0800)}, {Sll(Ipv6(syn6), 0x86dd)}}},
      {DLT_LINUX_SLL2,
       {{Sll2(Ipv4(syn), 0x0800)}, {Sll2(Ipv4(synack), 0x0800)}, {Sll2(Ipv6(syn6), 0x86dd)}}},
      {DLT_RAW, {{Ipv4(syn)}, {Ipv4(synack)}, {Ipv6(syn6)}}},
  };
  for (const auto& [dlt, frames] : files) {
    SCOPED_TRACE(pcap_datalink_val_to_name(dlt));
    auto summary = SummarizePcapFile(Write(absl::StrCat(dlt, ".pcap"), dlt, frames), {kServerPort});
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->to_server.syn, 2u);
    EXPECT_EQ(summary->to_server.syn_retransmit, 0u);
    EXPECT_EQ(summary->from_server.synack, 1u);
    EXPECT_EQ(summary->ignored, 0u);
  }
}

TEST_F(PcapFileTest, IgnoresNonTcpOtherPortsFragmentsAndTruncatedPackets) {
  const Segment syn{kClient, 40000, kServer, kServerPort, 1, kSyn};
  Bytes arp(42, 0);
  Put16(arp, 12, 0x0806);
  const Bytes full = EthIpv4(syn);
  const std::string path =
      Write("junk.pcap", DLT_EN10MB,
            {
                {Ethernet(Ipv4(syn, /*protocol=*/17), 0x0800)},         // UDP
                {arp},                                                  // ARP
                {EthIpv4({kClient, 40000, kServer, 9090, 1, kSyn})},    // other port
                {Ethernet(Ipv4(syn, 6, /*fragment=*/0x0010), 0x0800)},  // later fragment
                {full, 14 + 20 + 10},                                   // TCP cut short
                {full, 14 + 12},                                        // IP cut short
                {full, 6},                                              // Ethernet cut
                {Ethernet(Bytes(20, 0x45), 0x0800)},                    // bogus lengths
                {Ethernet(Ipv4(syn), 0x0800)},                          // the one SYN
            });
  auto summary = SummarizePcapFile(path, {kServerPort});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->ignored, 8u);
  EXPECT_EQ(summary->to_server.syn, 1u);
  EXPECT_EQ(summary->to_server.total, 1u);
  EXPECT_EQ(summary->from_server.total, 0u);
}

TEST_F(PcapFileTest, MissingFileIsNotFoundAndNamesIt) {
  const std::string path = Path("nope.pcap");
  auto summary = SummarizePcapFile(path, {kServerPort});
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(summary.status().message(), HasSubstr(path));
}

TEST_F(PcapFileTest, GarbageFileIsDataLossAndNamesIt) {
  const std::string path = Path("garbage.pcap");
  std::ofstream(path) << "this is not a pcap file at all";
  auto summary = SummarizePcapFile(path, {kServerPort});
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(summary.status().message(), HasSubstr(path));
}

TEST_F(PcapFileTest, TruncatedFileIsDataLoss) {
  const std::string path =
      Write("cut.pcap", DLT_EN10MB, {{EthIpv4({kClient, 40000, kServer, kServerPort, 1, kSyn})}});
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  auto summary = SummarizePcapFile(path, {kServerPort});
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(summary.status().message(), HasSubstr(path));
}

TEST_F(PcapFileTest, UnsupportedLinkTypeIsUnimplemented) {
  const std::string path = Write("null.pcap", DLT_NULL, {});
  auto summary = SummarizePcapFile(path, {kServerPort});
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(summary.status().message(), HasSubstr("NULL"));
}

TEST_F(PcapFileTest, NoPortsIsInvalidArgument) {
  const std::string path = Write("empty.pcap", DLT_EN10MB, {});
  EXPECT_EQ(SummarizePcapFile(path, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PacketCapture::Start("lo", {}, Path("x.pcap")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PcapFileTest, StartOnMissingInterfaceNamesIt) {
  auto capture = PacketCapture::Start("synq-nosuch0", {kServerPort}, Path("x.pcap"));
  ASSERT_FALSE(capture.ok());
  EXPECT_EQ(capture.status().code(), absl::StatusCode::kNotFound) << capture.status();
  EXPECT_THAT(capture.status().message(), HasSubstr("synq-nosuch0"));
}

// Runs `body` on a thread of its own in a fresh network namespace with lo up, so live traffic
// never touches the host's namespace. The namespace goes away with the thread. Returns
// PERMISSION_DENIED (to skip on) without CAP_SYS_ADMIN.
absl::Status InFreshNetns(const std::function<void()>& body) {
  absl::Status status;
  std::thread thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      status = absl::ErrnoToStatus(errno, "unshare(CLONE_NEWNET)");
      return;
    }
    common::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    if (!fd || ::ioctl(fd.get(), SIOCGIFFLAGS, &ifr) != 0) {
      status = absl::ErrnoToStatus(errno, "SIOCGIFFLAGS lo");
      return;
    }
    ifr.ifr_flags |= IFF_UP;
    if (::ioctl(fd.get(), SIOCSIFFLAGS, &ifr) != 0) {
      status = absl::ErrnoToStatus(errno, "SIOCSIFFLAGS lo up");
      return;
    }
    body();
  });
  thread.join();
  return status;
}

// Variadic because the lambda passed in has commas of its own.
#define RUN_IN_FRESH_NETNS(...)                                 \
  do {                                                          \
    absl::Status netns = InFreshNetns(__VA_ARGS__);             \
    if (absl::IsPermissionDenied(netns)) GTEST_SKIP() << netns; \
    ASSERT_TRUE(netns.ok()) << netns;                           \
  } while (0)

// A non-blocking TCP socket connecting to `to`.
common::UniqueFd StartConnect(const sockaddr_in& to) {
  common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.valid());
  const int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof(to));
  EXPECT_TRUE(rc == 0 || errno == EINPROGRESS) << std::strerror(errno);
  return fd;
}

bool Connected(int fd) {
  sockaddr_storage peer{};
  socklen_t length = sizeof(peer);
  return ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0;
}

TEST_F(PcapFileTest, LoopbackCaptureSeesFullAcceptQueueDropSyns) {
  const std::string path = Path("live.pcap");
  RUN_IN_FRESH_NETNS([&] {
    common::UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), length), 0);
    ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
    const uint16_t port = ntohs(address.sin_port);

    auto capture = PacketCapture::Start("lo", {port}, path);
    ASSERT_TRUE(capture.ok()) << capture.status();
    ASSERT_EQ(::listen(listener.get(), 1), 0);  // the accept queue holds backlog + 1 = 2

    // One at a time, so each handshake completes before the next SYN: these fill the queue.
    std::vector<common::UniqueFd> clients;
    for (int i = 0; i < 2; ++i) {
      clients.push_back(StartConnect(address));
      pollfd p{.fd = clients.back().get(), .events = POLLOUT, .revents = 0};
      ASSERT_EQ(::poll(&p, 1, 1500), 1);
      ASSERT_TRUE(Connected(clients.back().get())) << "client " << i;
    }
    std::this_thread::sleep_for(20ms);  // let the last handshake ACK reach the listener
    // These SYNs find the queue full and are dropped; the clients retransmit after ~1 s.
    clients.push_back(StartConnect(address));
    clients.push_back(StartConnect(address));
    std::this_thread::sleep_for(1500ms);
    EXPECT_FALSE(Connected(clients[2].get()));
    EXPECT_FALSE(Connected(clients[3].get()));

    // Stop before closing anything: closing the listener would reset its queued connections.
    auto summary = (*capture)->Stop();
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->file, path);
    EXPECT_GE(summary->to_server.syn, 4u);
    EXPECT_GE(summary->to_server.syn_retransmit, 1u);
    EXPECT_GE(summary->to_server.pure_ack, 2u);
    EXPECT_GE(summary->from_server.synack, 2u);
    EXPECT_EQ(summary->to_server.rst, 0u);
    EXPECT_EQ(summary->from_server.rst, 0u);
    EXPECT_EQ(summary->ignored, 0u);
    EXPECT_EQ(summary->dropped_by_kernel, 0u);
    EXPECT_GT(std::filesystem::file_size(path), 24u);  // more than the pcap file header

    EXPECT_EQ((*capture)->Stop().status().code(), absl::StatusCode::kFailedPrecondition);
  });
}

TEST_F(PcapFileTest, AnyDeviceSeesEachLoopbackPacketOnce) {
  const std::string path = Path("any.pcap");
  RUN_IN_FRESH_NETNS([&] {
    common::UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), length), 0);
    ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
    ASSERT_EQ(::listen(listener.get(), 16), 0);

    // "any" is Linux cooked capture (SLL or SLL2), the other decoding path.
    auto capture = PacketCapture::Start("any", {ntohs(address.sin_port)}, path);
    ASSERT_TRUE(capture.ok()) << capture.status();
    common::UniqueFd client = StartConnect(address);
    pollfd p{.fd = client.get(), .events = POLLOUT, .revents = 0};
    ASSERT_EQ(::poll(&p, 1, 1500), 1);
    ASSERT_TRUE(Connected(client.get()));
    auto summary = (*capture)->Stop();
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->to_server.syn, 1u);
    EXPECT_EQ(summary->to_server.syn_retransmit, 0u);
    EXPECT_EQ(summary->from_server.synack, 1u);
    EXPECT_EQ(summary->to_server.pure_ack, 1u);
  });
}

TEST_F(PcapFileTest, DestroyingARunningCaptureKeepsTheFile) {
  const std::string path = Path("dropped.pcap");
  RUN_IN_FRESH_NETNS([&] {
    auto capture = PacketCapture::Start("lo", {kServerPort}, path);
    ASSERT_TRUE(capture.ok()) << capture.status();
    capture->reset();
    auto summary = SummarizePcapFile(path, {kServerPort});
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->to_server.total, 0u);
  });
}

TEST_F(PcapFileTest, UnwritableFileIsAnErrorNamingIt) {
  const std::string path = Path("no-such-dir/x.pcap");
  RUN_IN_FRESH_NETNS([&] {
    auto capture = PacketCapture::Start("lo", {kServerPort}, path);
    ASSERT_FALSE(capture.ok());
    EXPECT_THAT(capture.status().message(), HasSubstr(path));
  });
}

}  // namespace
}  // namespace synq::agent
