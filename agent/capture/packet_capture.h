// Packet evidence for a run: a libpcap capture of the listener ports kept as a pcap file, and
// per-direction counts of handshake packets (SYN, SYN-ACK, their retransmits, pure ACKs, RSTs).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"

struct pcap;
struct pcap_dumper;

namespace synq::agent {

// Counts for one direction. Every TCP packet is in `total`. SYN/SYN-ACK/pure ACK/RST are
// exclusive kinds (a packet with RST set is an `rst` whatever its other flags); `fin` and `data`
// may overlap (a FIN carrying payload is in both).
struct PacketCounts {
  uint64_t syn = 0;                // SYN without ACK, retransmits included
  uint64_t syn_retransmit = 0;     // ...of which same 4-tuple and ISN was seen before
  uint64_t synack = 0;             // SYN+ACK, retransmits included
  uint64_t synack_retransmit = 0;  // ...of which same 4-tuple and seq was seen before
  uint64_t pure_ack = 0;           // ACK, no SYN/FIN/RST, no payload (handshake ACKs among them)
  uint64_t rst = 0;                // RST set
  uint64_t fin = 0;                // FIN set (no RST)
  uint64_t data = 0;               // TCP payload > 0 (no SYN, no RST)
  uint64_t total = 0;              // every TCP packet in this direction
};

// What a capture saw. "to_server" is packets whose destination port is a listener port (this
// wins when both ports are listener ports); "from_server" those whose source port is one.
struct CaptureSummary {
  std::string file;
  PacketCounts to_server;
  PacketCounts from_server;
  // Packets in the file that were not TCP over IPv4/IPv6 on a listener port, or were cut short
  // or malformed (e.g. the TCP header beyond the snap length).
  uint64_t ignored = 0;
  // Packets the kernel dropped because the capture buffer was full (pcap_stats ps_drop); 0 for
  // offline summaries.
  uint64_t dropped_by_kernel = 0;
};

// Keeps at most `keep` files named capture-*.pcap in `dir`, removing the oldest (by mtime)
// first: each run that captures leaves one in the agent's state dir, and the controller has its
// copy once the run is collected. Returns the files removed.
std::vector<std::string> PruneCaptures(const std::string& dir, size_t keep);

// Captures up to this size travel to the controller inside CollectResults; the agent deletes
// them at run end. Bigger ones stay in the state dir (the last few: PruneCaptures).
inline constexpr uintmax_t kMaxShippedCapture = 64u << 20;

// A live capture on one interface, written to a pcap file by a background thread.
// Not thread-safe: Start, Stop and the destructor are for one owner.
class PacketCapture {
 public:
  // Opens `interface` (snaplen 128, immediate mode, 4 MiB buffer, not promiscuous), filters
  // "tcp and (port P1 or ...)" (also 802.1Q-tagged on Ethernet), dumps to `file` (created or
  // truncated) and starts the capture thread. Packets are captured once this returns.
  // Errors name the interface (or file) and carry pcap's message: NOT_FOUND for a missing
  // interface, PERMISSION_DENIED without CAP_NET_RAW, INVALID_ARGUMENT for no ports.
  static absl::StatusOr<std::unique_ptr<PacketCapture>> Start(const std::string& interface,
                                                              const std::vector<uint16_t>& ports,
                                                              const std::string& file);

  PacketCapture(const PacketCapture&) = delete;
  PacketCapture& operator=(const PacketCapture&) = delete;
  // Stops the capture if still running; the file is kept.
  ~PacketCapture();

  // Stops the thread, drains what the kernel already delivered, closes the file and returns its
  // summary. An error from the capture itself (e.g. the interface went away) is returned here.
  // A second call is FAILED_PRECONDITION.
  absl::StatusOr<CaptureSummary> Stop();

  const std::string& interface() const { return interface_; }
  const std::string& file() const { return file_; }

 private:
  PacketCapture(std::string interface, std::vector<uint16_t> ports, std::string file);
  void Run();
  // Joins the thread, drains, records the drop count and closes dumper and handle.
  absl::Status Shutdown();

  std::string interface_;
  std::vector<uint16_t> ports_;
  std::string file_;
  pcap* handle_ = nullptr;
  pcap_dumper* dumper_ = nullptr;
  common::UniqueFd stop_event_;  // eventfd that wakes the capture thread to exit
  std::thread thread_;
  absl::Status thread_status_;  // written by the thread, read after join
  uint64_t dropped_by_kernel_ = 0;
  bool stopped_ = false;
};

// Classifies the packets of a pcap file with the same rules as a live capture. Link types:
// Ethernet (with 802.1Q/802.1ad tags), Linux cooked (SLL, SLL2: the "any" device) and raw IP.
// A missing file is NOT_FOUND, an unsupported link type UNIMPLEMENTED, a corrupt or truncated
// file DATA_LOSS; every error names the file.
absl::StatusOr<CaptureSummary> SummarizePcapFile(const std::string& file,
                                                 const std::vector<uint16_t>& ports);

}  // namespace synq::agent
