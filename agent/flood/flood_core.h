// FloodCore: what every flood engine shares (schedule, room, slots, outcome accounting, series,
// histograms, close deadlines, source ports, held sockets); engines add only their I/O layer.
// Internal to agent/flood: RunFlood (flood_engine.h) is the interface.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/flood/flood_spec.h"
#include "common/net_address.h"

namespace synq::agent::flood {

using Clock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

// Longest single wait: how quickly `stop` is noticed.
inline constexpr std::chrono::nanoseconds kMaxWait = std::chrono::milliseconds(50);
// Attempts launched per pass of the loop before completions are reaped again (completions are
// timestamped when reaped, so a long launch burst would inflate the latencies of the first).
inline constexpr int kLaunchBatch = 32;
// Sockets opened and bound before the start instant (at most one launch batch), so that at the
// instant a launch is only its connect.
inline constexpr int kPreparedSockets = kLaunchBatch;
// How long before the start instant the wait stops sleeping and spins on the clock (0 = it
// sleeps to the instant itself: on a host running more waiting threads than cores, spinners
// take the CPU from the threads they wait with).
inline constexpr std::chrono::nanoseconds kStartSpin{0};
// Reads per readiness event on a held socket before waiting again (bounds a chatty peer).
inline constexpr int kMaxRecvsPerEvent = 16;
inline constexpr uint32_t kNoRecord = std::numeric_limits<uint32_t>::max();
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// Per-connection errors are measurements; these sort one into its outcome.
std::pair<Outcome, std::string> ClassifyConnectError(int err);
std::pair<Outcome, std::string> ClassifyHeldError(int err);
std::string LocalAddressString(int fd);

enum SlotState : uint8_t { kFree, kConnecting, kLiving, kClosing };
// Engine-owned flags (ops of the current generation still in the kernel) and what was seen.
enum SlotFlag : uint8_t {
  kConnectPending = 1,
  kPollPending = 2,
  kSendPending = 4,
  kAnswered = 8,
};

// One open socket: all the engine keeps per connection (no strings, no clock objects). A slot is
// recycled as soon as its attempt has an outcome, even if a completion is still on its way; the
// generation tells those apart from the completions of the slot's next occupant.
struct Slot {
  int64_t scheduled_ns = 0;  // due instant, from the schedule's start
  int32_t fd = -1;
  uint32_t generation = 0;
  uint32_t record = kNoRecord;  // index in result.connections when records are kept
  uint8_t state = kFree;
  uint8_t flags = 0;
};
static_assert(sizeof(Slot) <= 24, "the engine's per-socket state must stay small");

// A deadline of one slot's occupant. Lifetimes and connect timeouts are constant, so deadlines
// come in order and a FIFO is a timer queue; entries of slots that ended early are skipped by
// their generation.
struct SlotDeadline {
  int64_t at_ns;
  uint32_t slot;
  uint32_t generation;
};

// Round-robin over source addresses and, per address, over its usable ports (port % stride ==
// offset within its ranges): the engine picks every (address, port) itself, so connect() never
// searches for a port.
class SourceRotation {
 public:
  explicit SourceRotation(const std::vector<SourcePorts>& sources);
  // Usable ports over all addresses.
  uint64_t total() const { return total_; }
  // Binds `fd` (SO_REUSEADDR) to the next (address, port): 0 or an errno. A port someone else
  // holds (EADDRINUSE) is skipped; after a full cycle without success, EADDRNOTAVAIL.
  int Bind(int fd);

 private:
  struct Range {
    uint32_t first;  // first usable port
    uint32_t last;
  };
  struct Source {
    common::SocketAddress address;
    uint32_t stride = 1;
    uint32_t offset = 0;
    std::vector<Range> ranges;
    uint64_t usable = 0;
    size_t range = 0;  // cursor: the next port to use
    uint32_t port = 0;
  };
  static void Advance(Source& s);

  std::vector<Source> sources_;
  uint64_t total_ = 0;
  uint64_t next_ = 0;
};

// The engine-independent flood (its contract is RunFlood's, flood_engine.h). An engine derives
// from it and supplies the I/O hooks below; the core calls them from its one thread.
class FloodCore {
 public:
  FloodCore(const FloodSpec& spec, std::optional<common::SocketAddress> source,
            const std::atomic<bool>& stop, uint64_t expected_slots, const char* engine_name);
  virtual ~FloodCore() = default;
  FloodCore(const FloodCore&) = delete;
  FloodCore& operator=(const FloodCore&) = delete;

  // Waits for the scheduled start, runs the schedule to its end (or `stop`), returns the result.
  FloodResult Run(SystemClock::time_point scheduled);

 protected:
  // --- The I/O layer.
  // Starts the connect of slot `index` (state kConnecting, fd bound, counted in connecting_).
  // Its outcome must reach OnConnect exactly once (possibly from inside this call), unless the
  // slot is released first (a connect timeout: OnConnectTimedOut).
  virtual void StartConnect(uint32_t index) = 0;
  // After a connect succeeded and the socket is to stay open: send the payload (if any) and
  // watch it for answers, EOF and errors (OnReadable), or Finish it.
  virtual void StartWatching(uint32_t index) = 0;
  // A living slot is to be closed (kClosing): true if the engine must wait for its own ops to
  // end first (it then calls CloseNow itself), false to close now.
  virtual bool PrepareClose(uint32_t index) = 0;
  // Waits up to `timeout_ns` for I/O (submitting what is queued) and dispatches what came.
  virtual void WaitAndReap(int64_t timeout_ns) = 0;
  // Dispatches what has already completed, without blocking (room check before a drop).
  virtual void ReapReady() = 0;
  // The engine's own earliest deadline (kNever if none) and expiring what is due at `now`.
  virtual int64_t NextIoDeadline() { return kNever; }
  virtual void ExpireIo(int64_t /*now*/) {}
  // Before teardown: end every op the kernel still holds for our slots (bounded wait).
  virtual void CancelAll() {}

  // --- Called by engines.
  int64_t Now() const { return (Clock::now() - anchor_).count(); }
  // The connect of slot `index` resolved: res 0 = established, else -errno.
  void OnConnect(uint32_t index, int res);
  // A connect still in flight at its timeout: counted as timed out, socket closed.
  void OnConnectTimedOut(uint32_t index);
  // A watched socket is readable or has an error: reads and drops data (answered), classifies
  // errors and EOF. True if the slot is still living afterwards (the watch goes on).
  bool OnReadable(uint32_t index);
  // A send completed with `res` (bytes or -errno).
  void OnSendResult(uint32_t index, int res);
  // Records the slot's outcome, closes its socket and recycles the slot.
  void Finish(uint32_t index, Outcome outcome, const std::string& error_name);
  // Closes a living slot the way the flood closes (rst/fin), counted established and closed.
  void CloseNow(uint32_t index);

  const FloodSpec& spec_;
  // Copies the kernel reads from while ops are in flight (they outlive an engine's ring, which is
  // a member of the derived class and so torn down first).
  const common::SocketAddress target_;
  const std::optional<common::SocketAddress> source_;
  const std::string remote_;
  const std::string payload_;
  const std::atomic<bool>& stop_;
  std::vector<Slot> slots_;
  bool finishing_ = false;  // past the end: completions only drain

 private:
  SystemClock::time_point ToSystem(int64_t ns) const {
    return anchor_system_ +
           std::chrono::duration_cast<SystemClock::duration>(std::chrono::nanoseconds(ns));
  }
  bool WaitForStart(SystemClock::time_point scheduled);
  bool WaitUntil(SystemClock::time_point scheduled);
  // Opens and binds the sockets of this ring's first launches (in the order Launch would), so
  // nothing but the connect is left for the instant; a failure just leaves the rest to Launch.
  void PrepareSockets();
  void ClosePrepared();
  bool HasRoom() const {
    return keep_ ? connecting_ < spec_.concurrency : connecting_ + living_ < spec_.concurrency;
  }
  void FirstAttempt();
  void NextAttempt();
  void LaunchDue(int64_t now);
  void Launch(int64_t scheduled_ns);
  void Drop(int64_t scheduled_ns);
  void CloseExpired(int64_t now);
  void BeginClose(uint32_t index);
  void Shutdown();
  uint32_t AllocateSlot();
  void Release(uint32_t index);
  void Tally(int64_t scheduled_ns, uint32_t record, Outcome outcome, const std::string& error_name,
             int64_t after_ns);
  FloodSecond& SecondOf(int64_t scheduled_ns);
  uint32_t NewRecord(int64_t scheduled_ns);
  void Resolved() {
    ++resolved_;
    last_resolved_ns_ = Now();
  }
  void Opened();
  void Closed();
  void NoteSource(const common::SocketAddress& address);

  const RateSchedule schedule_;
  const bool unpaced_;
  const bool keep_;
  const uint32_t stride_;
  const int64_t duration_ns_;
  const int64_t lifetime_ns_;
  const uint64_t max_records_;
  std::optional<SourceRotation> rotation_;
  std::vector<int> prepared_;  // opened and bound before the start, taken in order by Launch
  size_t prepared_next_ = 0;

  FloodResult result_;
  std::vector<uint32_t> free_slots_;
  std::deque<SlotDeadline> closes_;
  // The next attempt of this engine: its number in the whole flood and its due instant.
  uint64_t next_k_ = 0;
  int64_t next_due_ns_ = 0;
  bool launching_done_ = false;
  uint64_t resolved_ = 0;    // attempts whose connect has an outcome
  uint64_t connecting_ = 0;  // connects in flight
  uint64_t living_ = 0;      // established sockets open (being watched or closing)
  int64_t own_open_ = 0;
  int64_t open_peak_ = 0;
  int64_t lag_max_ns_ = 0;
  bool first_local_noted_ = false;
  // The schedule's start on the monotonic clock (may lie before the call's own start).
  Clock::time_point anchor_;
  SystemClock::time_point anchor_system_;
  int64_t last_resolved_ns_ = 0;
};

}  // namespace synq::agent::flood
