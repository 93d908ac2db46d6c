// One run on one agent: settings, listeners, floods, sampling, and the restore of all of it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/capture/packet_capture.h"
#include "agent/flood/flood_spec.h"
#include "agent/kernel/sock_diag.h"
#include "agent/kernel/sysctl_settings.h"
#include "agent/listener/listener.h"
#include "agent/metrics/agent_metrics.h"
#include "agent/shaping/shaper.h"
#include "agent/trace/drop_events.h"
#include "common/limits.h"
#include "common/proc_counters.h"

namespace synq::agent {

struct ListenerSnapshot {
  std::string name;
  std::string address;  // "ip:port"
  std::string ip;
  uint32_t port = 0;
  int backlog = 0;
  int64_t backlog_effective = -1;
  uint64_t accepted = 0;
  int64_t accept_queue_peak = 0;
  // A listener another process owns (ObserveListener): `accepted` is then the number of its
  // server sockets that left the accept queue, seen at collection (agent/run/observed_listener).
  bool observed = false;
  std::string owner;  // "nginx (pid 1234)", empty when not found
};

struct ListenerSampleValue {
  std::string name;
  ListenQueue queue;
};

struct SampleValue {
  std::chrono::system_clock::time_point at;
  std::vector<ListenerSampleValue> listeners;
  common::Counters counter_deltas;  // non-zero deltas since the run began
};

// A server-side socket seen at collection time, for joining with client attempts.
struct ServerSocketView {
  std::string local;
  std::string remote;
  int state = 0;  // TCP_ESTABLISHED, TCP_SYN_RECV, ... (kernel numbering)
  bool accepted = false;
  std::string listener;
};

struct CollectedRun {
  std::vector<FloodResult> floods;
  std::vector<ListenerSnapshot> listeners;
  common::Counters counter_deltas;
  std::vector<ServerSocketView> server_sockets;
  std::map<std::string, int64_t> drop_events;
  std::string drop_events_unavailable;
  // Set when the run captured packets.
  std::optional<CaptureSummary> capture;
  std::string capture_interface;
  std::string capture_error;
};

// Where an agent keeps state that must survive a crash.
struct AgentPaths {
  std::string proc_sys_dir = "/proc/sys";
  std::string state_dir = "/var/lib/synq-agent";
  std::string settings_journal() const { return state_dir + "/settings-journal.json"; }
  std::string shaping_journal() const { return state_dir + "/shaping-journal.json"; }
  std::string trace_journal() const { return state_dir + "/trace-journal.json"; }
};

// Who asks. A run belongs to the caller that began it: the token BeginRun handed out, and, over
// TLS, the certificate identity that began it. Anyone else is refused with PERMISSION_DENIED.
struct Caller {
  std::string identity;  // the TLS peer's certificate identity; empty without TLS
  std::string token;     // the run token the caller presents; empty at BeginRun
};

struct RunManagerOptions {
  // The longest lease BeginRun accepts: a huge lease must not pin the agent for good.
  std::chrono::nanoseconds max_lease = common::kMaxLease;
  // A run whose Watch stream has not opened this long after BeginRun is abandoned: a caller that
  // begins runs and never watches them cannot hold the agent for a whole lease.
  std::chrono::nanoseconds watch_open_timeout = std::chrono::seconds(10);
  // How long a BeginRun waits for the previous run's teardown before it gives up.
  std::chrono::nanoseconds teardown_wait = std::chrono::seconds(30);
  // Where runs, floods, listener samples and restores are counted (--metrics-listen); none when
  // null. Not owned; outlives the manager.
  AgentMetrics* metrics = nullptr;
};

// Holds at most one open run. Every method is thread-safe, and none blocks for long: waits for a
// teardown, teardowns (joining flood threads, removing shaping) and result collection run on the
// manager's own threads and answer through a callback, so gRPC's callback threads never block.
// A run ends by End(), by its lease running out, by its Watch never opening, or by Abandon()
// when the controller's Watch stream breaks; each path stops floods and listeners, removes
// shaping and restores settings.
class RunManager {
 public:
  using SampleSink = std::function<void(const SampleValue&)>;
  using DoneCallback = std::function<void(absl::StatusOr<CollectedRun>)>;
  using BeginCallback = std::function<void(absl::StatusOr<std::string> run_token)>;
  using EndCallback = std::function<void(absl::StatusOr<std::map<std::string, int64_t>>)>;

  explicit RunManager(AgentPaths paths, RunManagerOptions options = {});
  ~RunManager();

  // Opens a run for `caller` and answers with its run token (at once, or once the previous run's
  // teardown is done). The same caller beginning the same run again gets the same token.
  void Begin(const Caller& caller, const std::string& run_id,
             std::chrono::nanoseconds sample_interval, std::chrono::nanoseconds lease,
             BeginCallback done);
  // From now on every BeginRun is refused with `why` (a restore at start failed: the host is not
  // as the agent found it, so it must not journal new "originals").
  void RefuseRuns(std::string why);
  // Why runs are refused, empty when they are not.
  std::string refusal() const;

  absl::StatusOr<std::map<std::string, int64_t>> ApplySettings(
      const Caller& caller, const std::string& run_id,
      const std::map<std::string, int64_t>& settings);
  absl::StatusOr<std::map<std::string, int64_t>> RestoreSettings(const Caller& caller,
                                                                 const std::string& run_id);
  absl::StatusOr<std::vector<ShapingApplied>> ApplyShaping(
      const Caller& caller, const std::string& run_id, const std::vector<ShapingRequest>& specs);
  absl::StatusOr<ListenerSnapshot> StartListener(const Caller& caller, const std::string& run_id,
                                                 const ListenerSpec& spec);
  // Watches the listener that another process has on `port` (and `address`, if not empty) like
  // synq's own: sampled, its port captured and traced, its sockets reported at collection.
  // NotFound naming the address when nothing listens there.
  absl::StatusOr<ListenerSnapshot> ObserveListener(const Caller& caller, const std::string& run_id,
                                                   const std::string& name, uint16_t port,
                                                   const std::string& address);
  absl::StatusOr<ListenerSnapshot> StopListener(const Caller& caller, const std::string& run_id,
                                                const std::string& name);
  // Starts capturing this run's listener ports on `interface` ("" = any) into the state dir.
  // Returns the interface and file used. Listeners must have been started.
  struct CaptureStarted {
    std::string interface;
    std::string file;
  };
  absl::StatusOr<CaptureStarted> StartCapture(const Caller& caller, const std::string& run_id,
                                              const std::string& interface);
  // With start_at and floods: plans them together and starts them at start_at. Without
  // start_at: arms them (planned, checked, threads waiting) until a call with start_at and no
  // floods fires them at its start_at; a run that ends first never starts them. start_at alone
  // also sets the instant listener pauses count from.
  absl::Status StartFloods(const Caller& caller, const std::string& run_id,
                           std::optional<std::chrono::system_clock::time_point> start_at,
                           std::vector<FloodSpec> floods);
  // Calls `done` once every flood has finished (at once if none runs), with the collected run,
  // or with an empty one when `wait_only` (the caller only waits for the floods to end). The
  // collection runs on a manager thread without the run's lock: sampling goes on meanwhile.
  absl::Status Collect(const Caller& caller, const std::string& run_id, bool wait_only,
                       DoneCallback done);
  // Registers a sink for samples; returns an id for Unsubscribe. `on_end` runs when the run ends.
  // Opening it is what keeps a fresh run from being abandoned (watch_open_timeout).
  absl::StatusOr<uint64_t> Subscribe(const Caller& caller, const std::string& run_id,
                                     SampleSink sink, std::function<void()> on_end);
  void Unsubscribe(uint64_t id);
  // Ends the caller's run on a manager thread: stops everything, restores, then calls `done`
  // with the restored settings. A run that is not open (ended already): OK, nothing restored.
  void End(const Caller& caller, const std::string& run_id, EndCallback done);
  // The controller that owns the run went away (its Watch broke): end the run on a manager
  // thread if it is still the open one.
  void Abandon(const std::string& run_id, const std::string& why);
  // Ends whatever run is open and waits for its restore (SIGTERM).
  void Shutdown();

  const AgentPaths& paths() const { return paths_; }

 private:
  struct Run;
  // A Collect caller waiting for the floods to end.
  struct Waiter {
    DoneCallback done;
    bool wait_only = false;
  };
  // The open run if it is `run_id` and `caller` owns it (the caller holds mu_). Errors never
  // name the open run: its id is its owner's business.
  absl::StatusOr<Run*> Find(const Caller& caller, const std::string& run_id);
  absl::Status BeginLocked(const Caller& caller, const std::string& run_id,
                           std::chrono::nanoseconds sample_interval, std::chrono::nanoseconds lease,
                           std::string* token);
  void SampleLoop(Run* run);
  SampleValue TakeSample(Run* run);
  void WatchdogLoop();
  // Ports of the run's listeners, synq's own and observed ones (caller holds run->mu).
  static std::vector<uint16_t> ListenerPortsLocked(const Run* run);
  // Starts counting drop trace events on this host's listener ports (caller holds run->mu).
  void StartDropEventsLocked(Run* run);
  // Answers Collect waiters once floods are done, without holding run->mu.
  void Answer(Run* run, std::vector<Waiter> waiters);
  // Snapshot for Collect. Takes run->mu only to copy what it reads.
  absl::StatusOr<CollectedRun> BuildCollected(Run* run);
  // Ends the open run if it is `run_id` (no owner check: lease, watch, abandon, shutdown).
  absl::StatusOr<std::map<std::string, int64_t>> EndNow(const std::string& run_id,
                                                        RunEndReason reason);
  absl::StatusOr<std::map<std::string, int64_t>> Teardown(
      std::unique_ptr<Run> run, std::vector<std::function<void()>> on_end);
  // Runs `work` on a new manager thread; threads are joined as they finish and at destruction.
  void Background(std::function<void()> work);

  const AgentPaths paths_;
  const RunManagerOptions options_;
  mutable std::mutex mu_;
  std::unique_ptr<Run> run_;
  std::map<uint64_t, std::pair<SampleSink, std::function<void()>>> sinks_;
  uint64_t next_sink_ = 1;
  bool closing_ = false;
  std::string refusal_;
  // The id of a run whose teardown is in progress: a new run waits until it is done, so it never
  // sees the old run's listeners or journals the old run's values as originals.
  std::string tearing_down_;
  std::condition_variable idle_cv_;
  std::condition_variable watchdog_cv_;  // wakes the lease watchdog when the run changes
  std::thread watchdog_;

  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex workers_mu_;
  std::vector<Worker> workers_;
};

}  // namespace synq::agent
