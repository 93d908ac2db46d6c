// What a connect flood does and what it measured: plain structs, no gRPC or protobuf.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/histogram.h"
#include "common/rate_schedule.h"
#include "common/net_address.h"
#include "common/unique_fd.h"

namespace synq::agent {

using common::RateProfile;
using common::RateSchedule;
using common::ValidateRateProfile;

enum class CloseMode { kKeep, kRst, kFin };

// The I/O layer a flood runs on. kAuto: the one this process chose at start
// (SetProcessFloodEngine, flood_engine.h), io_uring unless told otherwise.
enum class FloodEngine { kAuto, kIoUring, kEpoll };

// Ports [first, last] of one local address that an engine may bind itself, taking only ports
// with port % stride == offset (so threads and workers share an address without overlap).
struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
};
struct SourcePorts {
  common::SocketAddress address;
  std::vector<PortRange> ranges;  // the usable ports: ip_local_port_range minus reserved ports
  uint32_t stride = 1;
  uint32_t offset = 0;
};

struct FloodSpec {
  std::string name;
  common::SocketAddress target;
  std::string source;  // local address to bind before connect; empty = kernel's choice
  uint64_t connections = 1;
  uint32_t concurrency = 1;  // connects in flight at most
  double rate = 0;           // connects/s; 0 = as fast as concurrency allows
  std::chrono::nanoseconds connect_timeout{std::chrono::seconds(1)};
  std::chrono::nanoseconds start_after{0};  // offset from the run's start instant
  std::chrono::nanoseconds hold{
      std::chrono::seconds(1)};  // watch for resets after the last connect
  std::string payload;           // sent right after connect, if not empty
  // Open-loop launching for `duration` (0 = until `connections` were launched; both = first).
  std::chrono::nanoseconds duration{0};
  RateProfile profile;  // rate above is profile.rate when kConstant
  std::chrono::nanoseconds lifetime{0};  // close rst/fin: after connect
  CloseMode close = CloseMode::kKeep;
  uint32_t threads = 0;              // 0 = the host's cores, at most concurrency
  std::vector<std::string> sources;  // as asked; empty = `source`, else all on the route
  // What the engine binds; empty = the kernel picks the port (and `source` the address).
  std::vector<SourcePorts> source_ports;
  bool keep_records = false;  // one ConnectionRecord per attempt
  uint64_t max_records = 0;   // 0 = default cap
  // One engine's share of a flood split over rings (threads) and worker processes: it launches
  // only attempts k (numbered over the whole flood, k < connections) with
  // k % schedule_stride == schedule_offset, each at the whole schedule's instant for k.
  // `concurrency` and `source_ports` are then this engine's share already.
  uint32_t schedule_stride = 1;
  uint32_t schedule_offset = 0;
  // Sockets open at once across every engine of the flood in this process (for open_peak);
  // null = this engine alone.
  std::shared_ptr<std::atomic<int64_t>> open_sockets;
  FloodEngine engine = FloodEngine::kAuto;
};

enum class Outcome { kEstablished, kReset, kRefused, kTimedOut, kError };

// One attempt. Times are from the attempt's start (socket creation).
struct ConnectionRecord {
  std::string local;  // "ip:port" (empty if the socket never got one)
  std::string remote;
  Outcome outcome = Outcome::kError;
  std::string error_name;  // errno name for kError ("EADDRNOTAVAIL")
  std::chrono::system_clock::time_point started_at;
  std::chrono::nanoseconds connect_latency{-1};  // -1 when it never connected
  std::chrono::nanoseconds outcome_after{-1};    // when reset/refused/timed-out/error was seen
};

// Attempts scheduled in [second, second + 1) of the flood and what became of them.
struct FloodSecond {
  uint32_t second = 0;
  uint64_t launched = 0;
  uint64_t established = 0;
  uint64_t reset = 0;
  uint64_t refused = 0;
  uint64_t timed_out = 0;
  uint64_t errors = 0;
  uint64_t late = 0;
  uint64_t dropped = 0;
  uint64_t answered = 0;
  common::Histogram connect_latency_us;
};

// Established connections from one local address to one target, as local ports.
struct HeldConnections {
  std::string local_ip;
  std::string remote;
  std::vector<uint16_t> local_ports;
};

struct FloodResult {
  std::string name;
  std::string engine;  // "io_uring" or "epoll"; merged shares: "io_uring+epoll" when mixed
  uint64_t attempted = 0;
  uint64_t established = 0;
  uint64_t reset = 0;
  uint64_t refused = 0;
  uint64_t timed_out = 0;
  std::map<std::string, uint64_t> errors;  // errno name -> count
  common::Histogram connect_latency_us;
  std::vector<ConnectionRecord> connections;
  std::chrono::system_clock::time_point started_at;  // actual start
  // Connections still established at the end of hold, left open so the server's view can be
  // read before the client closes them; the run closes them when it ends.
  std::shared_ptr<std::vector<common::UniqueFd>> held_sockets =
      std::make_shared<std::vector<common::UniqueFd>>();
  uint64_t answered = 0;
  uint64_t launches_late = 0;  // more than 1 ms after schedule
  uint64_t launches_dropped = 0;
  std::chrono::nanoseconds launch_lag_max{0};
  uint64_t closed = 0;
  std::vector<FloodSecond> series;  // index = second
  std::vector<HeldConnections> held;
  uint32_t threads = 1;
  uint32_t workers = 1;
  std::vector<std::string> worker_errors;
  std::vector<std::string> sources;
  uint64_t records_dropped = 0;
  uint64_t open_peak = 0;
  // When resets / timeouts were decided (us from the scheduled instant), the first
  // kMaxOutcomeSamples of each; the rest counted in outcome_samples_dropped.
  static constexpr size_t kMaxOutcomeSamples = 10'000;
  std::vector<uint32_t> reset_after_us;
  std::vector<uint32_t> timed_out_after_us;
  uint64_t outcome_samples_dropped = 0;
  // Keeps whatever holds the flood's sockets open elsewhere (worker processes) until the run
  // drops the result.
  std::shared_ptr<void> keepalive;
};

}  // namespace synq::agent
