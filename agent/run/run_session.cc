#include "agent/run/run_session.h"

#include <netinet/tcp.h>
#include <sys/random.h>

#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/flood_runner.h"
#include "agent/run/observed_listener.h"
#include "common/limits.h"
#include "spdlog/spdlog.h"

namespace synq::agent {

struct RunManager::Run {
  std::string id;
  // The owner: the token handed out at BeginRun and the TLS identity that began it.
  std::string token;
  std::string identity;
  std::chrono::nanoseconds interval{std::chrono::milliseconds(100)};
  std::chrono::steady_clock::time_point deadline;
  // Until a Watch opens, the run must see one by this instant or be abandoned.
  std::chrono::steady_clock::time_point watch_deadline;
  bool watched = false;  // guarded by the manager's mu_
  std::unique_ptr<SettingsGuard> settings;
  std::unique_ptr<ShapingSet> shaping;
  common::Counters counters_before;
  std::atomic<bool> stop{false};

  // Guards everything below; flood threads and the sampler take only this lock.
  std::mutex mu;
  std::condition_variable cv;
  // Shared so that a collection can read them without holding `mu` while StopListener runs.
  std::vector<std::shared_ptr<Listener>> listeners;
  std::vector<std::shared_ptr<ObservedListener>> observed;  // listeners of other processes
  std::vector<std::thread> flood_threads;
  std::vector<FloodResult> flood_results;
  std::vector<std::string> flood_errors;
  int floods_running = 0;
  std::vector<Waiter> waiters;
  std::thread sampler;
  bool sampler_stop = false;
  std::unique_ptr<DropEventCounter> drop_events;
  std::string drop_events_unavailable;
  std::shared_ptr<PacketCapture> capture;
  // Serialises collections (the capture is stopped by the first one); never held with `mu`
  // waiting, so the sampler is not held up by a collection.
  std::mutex collect_mu;
  std::optional<absl::StatusOr<CaptureSummary>> capture_summary;  // once stopped (collect_mu)
  int collecting = 0;  // collections in progress (mu): the teardown waits for them
  // StartFloods' start_at: listeners started later count their pauses from it too.
  std::optional<std::chrono::system_clock::time_point> flood_start;
  // Armed floods (StartFloods without start_at) wait on `cv` for `fire_at` (or `stop`).
  bool armed = false;
  std::optional<std::chrono::system_clock::time_point> fire_at;
};

namespace {

// 128 random bits, hex: the run token a caller must present for every call of its run.
std::string NewRunToken() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

// Compares in time independent of where the strings differ.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

constexpr std::chrono::nanoseconds kDefaultLease = std::chrono::minutes(30);

std::string Seconds(std::chrono::nanoseconds d) {
  return absl::StrCat(std::chrono::duration_cast<std::chrono::duration<double>>(d).count(), " s");
}

}  // namespace

RunManager::RunManager(AgentPaths paths, RunManagerOptions options)
    : paths_(std::move(paths)), options_(options) {
  watchdog_ = std::thread([this] { WatchdogLoop(); });
}

RunManager::~RunManager() {
  Shutdown();
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  watchdog_cv_.notify_all();
  watchdog_.join();
  std::vector<Worker> workers;
  {
    std::lock_guard<std::mutex> lock(workers_mu_);
    workers = std::move(workers_);
  }
  for (auto& w : workers) w.thread.join();
}

void RunManager::Background(std::function<void()> work) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::vector<Worker> finished;
  {
    std::lock_guard<std::mutex> lock(workers_mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->done->load()) {
        finished.push_back(std::move(*it));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    workers_.push_back(Worker{std::thread([work = std::move(work), done] {
                                work();
                                done->store(true);
                              }),
                              done});
  }
  for (auto& w : finished) w.thread.join();
}

void RunManager::WatchdogLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!closing_) {
    if (run_ == nullptr) {
      watchdog_cv_.wait(lock);
      continue;
    }
    const std::string id = run_->id;
    const bool unwatched = !run_->watched;
    const auto wake = unwatched ? std::min(run_->deadline, run_->watch_deadline) : run_->deadline;
    if (watchdog_cv_.wait_until(lock, wake) != std::cv_status::timeout || run_ == nullptr ||
        run_->id != id) {
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    std::string why;
    RunEndReason reason = RunEndReason::kLeaseExpired;
    if (now >= run_->deadline) {
      why = "its lease ran out";
    } else if (!run_->watched && now >= run_->watch_deadline) {
      reason = RunEndReason::kUnwatched;
      why = absl::StrCat("no Watch stream opened within ", Seconds(options_.watch_open_timeout),
                         " of BeginRun");
    }
    if (why.empty()) continue;
    lock.unlock();
    spdlog::warn("ending run {}: {}; restoring every setting", id, why);
    if (auto s = EndNow(id, reason); !s.ok()) {
      spdlog::error("restore after {}: {}", why, s.status().ToString());
    }
    lock.lock();
  }
}

void RunManager::RefuseRuns(std::string why) {
  std::lock_guard<std::mutex> lock(mu_);
  refusal_ = std::move(why);
}

std::string RunManager::refusal() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refusal_;
}

void RunManager::Begin(const Caller& caller, const std::string& run_id,
                       std::chrono::nanoseconds sample_interval, std::chrono::nanoseconds lease,
                       BeginCallback done) {
  if (run_id.empty() || run_id.size() > common::kMaxRunIdLength) {
    done(absl::InvalidArgumentError(absl::StrCat("run_id: must be 1..", common::kMaxRunIdLength,
                                                 " characters, got ", run_id.size())));
    return;
  }
  // The same bounds as the request check (agent/service/requests.cc ToBeginRun) and the
  // scenario loader: common/limits.h, so what validates is never refused here.
  if (sample_interval < common::kMinSampleInterval || sample_interval > common::kMaxDuration) {
    done(absl::InvalidArgumentError(
        absl::StrCat("sample_interval: must be 1 ms .. 24 h, got ", Seconds(sample_interval))));
    return;
  }
  if (lease < std::chrono::nanoseconds::zero() || lease > options_.max_lease) {
    done(absl::InvalidArgumentError(absl::StrCat(
        "lease: must be at most ", Seconds(options_.max_lease), ", got ", Seconds(lease))));
    return;
  }
  if (lease == std::chrono::nanoseconds::zero()) lease = kDefaultLease;
  std::unique_lock<std::mutex> lock(mu_);
  if (tearing_down_.empty()) {
    std::string token;
    absl::Status begun = BeginLocked(caller, run_id, sample_interval, lease, &token);
    lock.unlock();
    if (begun.ok()) {
      done(std::move(token));
    } else {
      done(begun);
    }
    return;
  }
  lock.unlock();
  // The previous run is still being torn down: wait for it here, not on the caller's thread.
  Background([this, caller, run_id, sample_interval, lease, done = std::move(done)] {
    std::unique_lock<std::mutex> wait_lock(mu_);
    if (!idle_cv_.wait_for(wait_lock, options_.teardown_wait,
                           [this] { return tearing_down_.empty(); })) {
      wait_lock.unlock();
      done(absl::UnavailableError(
          absl::StrCat("the previous run on this agent is still being ended after ",
                       Seconds(options_.teardown_wait), "; try again")));
      return;
    }
    std::string token;
    absl::Status begun = BeginLocked(caller, run_id, sample_interval, lease, &token);
    wait_lock.unlock();
    if (begun.ok()) {
      done(std::move(token));
    } else {
      done(begun);
    }
  });
}

absl::Status RunManager::BeginLocked(const Caller& caller, const std::string& run_id,
                                     std::chrono::nanoseconds sample_interval,
                                     std::chrono::nanoseconds lease, std::string* token) {
  if (!refusal_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("this agent refuses new runs: ", refusal_));
  }
  if (run_ != nullptr) {
    // The same caller beginning the same run again (a retried call) is not a second run.
    if (run_->id == run_id && SameSecret(run_->token, caller.token) &&
        run_->identity == caller.identity) {
      *token = run_->token;
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(
        "another run is open on this agent; it ends when its controller ends it, when its "
        "controller goes away, or when its lease runs out");
  }
  auto counters = common::ReadKernelCounters();
  if (!counters.ok()) return counters.status();
  auto run = std::make_unique<Run>();
  run->id = run_id;
  run->token = NewRunToken();
  run->identity = caller.identity;
  run->interval = sample_interval;
  const auto now = std::chrono::steady_clock::now();
  run->deadline = now + lease;
  run->watch_deadline = now + options_.watch_open_timeout;
  run->settings = std::make_unique<SettingsGuard>(paths_.proc_sys_dir, paths_.settings_journal());
  run->shaping = std::make_unique<ShapingSet>(paths_.shaping_journal());
  run->counters_before = *std::move(counters);
  Run* raw = run.get();
  run->sampler = std::thread([this, raw] { SampleLoop(raw); });
  *token = run->token;
  run_ = std::move(run);
  watchdog_cv_.notify_all();
  if (options_.metrics != nullptr) options_.metrics->RunBegun();  // metrics hook
  spdlog::info("run {} begun{} (sample interval {} ms, lease {} s)", run_id,
               caller.identity.empty() ? "" : absl::StrCat(" by ", caller.identity),
               std::chrono::duration_cast<std::chrono::milliseconds>(sample_interval).count(),
               std::chrono::duration_cast<std::chrono::seconds>(lease).count());
  return absl::OkStatus();
}

absl::StatusOr<RunManager::Run*> RunManager::Find(const Caller& caller, const std::string& run_id) {
  if (run_ == nullptr) return absl::FailedPreconditionError("no run is open on this agent");
  if (!SameSecret(run_->token, caller.token) || run_->identity != caller.identity) {
    return absl::PermissionDeniedError(
        "the run open on this agent belongs to another caller (no matching run token"
        " or certificate identity)");
  }
  if (run_->id != run_id) {
    return absl::FailedPreconditionError(
        "run_id: not the run this caller has open on this agent (ended already?)");
  }
  return run_.get();
}

absl::StatusOr<std::map<std::string, int64_t>> RunManager::ApplySettings(
    const Caller& caller, const std::string& run_id,
    const std::map<std::string, int64_t>& settings) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = Find(caller, run_id);
  if (!run.ok()) return run.status();
  return (*run)->settings->Apply(settings);
}

absl::StatusOr<std::map<std::string, int64_t>> RunManager::RestoreSettings(
    const Caller& caller, const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = Find(caller, run_id);
  if (!run.ok()) return run.status();
  return (*run)->settings->Restore();
}

absl::StatusOr<std::vector<ShapingApplied>> RunManager::ApplyShaping(
    const Caller& caller, const std::string& run_id, const std::vector<ShapingRequest>& specs) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = Find(caller, run_id);
  if (!run.ok()) return run.status();
  return (*run)->shaping->Apply(specs);
}

namespace {
ListenerSnapshot Snapshot(Listener& listener) {
  ListenerSnapshot out;
  out.name = listener.spec().name;
  out.address = listener.bound().ToString();
  out.ip = listener.bound().HostString();
  out.port = listener.bound().port();
  out.backlog = listener.spec().backlog;
  auto queue = QueryListenQueue(listener.bound().port());
  if (queue.ok()) {
    out.backlog_effective = queue->accept_queue_max;
    listener.ObserveAcceptQueue(queue->accept_queue);
  }
  out.accepted = listener.accepted();
  out.accept_queue_peak = listener.accept_queue_peak();
  return out;
}

// `accepted`: the server sockets seen now that left the accept queue; -1 = not counted here.
ListenerSnapshot Snapshot(ObservedListener& listener, int64_t accepted) {
  ListenerSnapshot out;
  out.name = listener.name();
  out.address = listener.local();
  out.ip = listener.ip();
  out.port = listener.port();
  out.backlog = 0;  // what the owner passed to listen() cannot be read back; see backlog_effective
  out.observed = true;
  out.owner = listener.owner();
  if (auto queue = listener.Query(); queue.ok()) out.backlog_effective = queue->accept_queue_max;
  out.accepted = accepted > 0 ? static_cast<uint64_t>(accepted) : 0;
  out.accept_queue_peak = listener.accept_queue_peak();
  return out;
}

bool NameTaken(const std::vector<std::shared_ptr<Listener>>& own,
               const std::vector<std::shared_ptr<ObservedListener>>& observed,
               const std::string& name) {
  for (const auto& l : own) {
    if (l->spec().name == name) return true;
  }
  for (const auto& o : observed) {
    if (o->name() == name) return true;
  }
  return false;
}
}  // namespace

absl::StatusOr<ListenerSnapshot> RunManager::StartListener(const Caller& caller,
                                                           const std::string& run_id,
                                                           const ListenerSpec& spec) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = Find(caller, run_id);
  if (!run.ok()) return run.status();
  std::lock_guard<std::mutex> run_lock((*run)->mu);
  if (NameTaken((*run)->listeners, (*run)->observed, spec.name)) {
    return absl::AlreadyExistsError(absl::StrCat("listener '", spec.name, "' already runs"));
  }
  auto started = Listener::Start(spec);
  if (!started.ok()) return started.status();
  std::shared_ptr<Listener> listener = *std::move(started);
  if ((*run)->flood_start) listener->SetFloodStart(*(*run)->flood_start);
  ListenerSnapshot snapshot = Snapshot(*listener);
  (*run)->listeners.push_back(std::move(listener));
  if (options_.metrics != nullptr) {  // metrics hook: the label of the listener's gauges
    options_.metrics->ListenerAdded(snapshot.name, snapshot.address);
  }
  // Count drop events from now on, filtered on every listener port of the run so far.
  (*run)->drop_events.reset();
  StartDropEventsLocked(*run);
  return snapshot;
}

absl::StatusOr<ListenerSnapshot> RunManager::ObserveListener(const Caller& caller,
                                                             const std::string& run_id,
                                                             const std::string& name, uint16_t port,
                                                             const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = Find(caller, run_id);
  if (!run.ok()) return run.status();
  std::lock_guard<std::mutex> run_lock((*run)->mu);
  if (NameTaken((*run)->listeners, (*run)->observed, name)) {
    return absl::AlreadyExistsError(absl::StrCat("listener '", name, "' already exists"));
  }
  for (const auto& l : (*run)->listeners) {
    if (l->bound().port() == port) {
      return absl::InvalidArgumentError(absl::StrCat("port ", port, " is synq's own listener '",
                                                     l->spec().name, "': name it as a target"));
    }
  }
  absl::StatusOr<ObservedListener> found = ObservedListener::Find(name, port, address);
  if (!found.ok()) return found.status();
  auto observed = std::make_shared<ObservedListener>(*found);
  ListenerSnapshot snapshot = Snapshot(*observed, -1);
  spdlog::info("observing listener {} at {} (owner: {})", name, snapshot.address,
               snapshot.owner.empty() ? "not found" : snapshot.owner);
  (*run)->observed.push_back(std::move(observed));
  if (options_.metrics != nullptr) options_.metrics->ListenerAdded(name, snapshot.address);
  (*run)->drop_events.reset();
  StartDropEventsLocked(*run);
  return snapshot;
}

absl::StatusOr<ListenerSnapshot> RunManager::StopListener(const Caller& caller,
                                                          const std::string& run_id,
                                                          const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = Find(caller, run_id);
  if (!run.ok()) return run.status();
  std::lock_guard<std::mutex> run_lock((*run)->mu);
  auto& listeners = (*run)->listeners;
  for (auto it = listeners.begin(); it != listeners.end(); ++it) {
    if ((*it)->spec().name != name) continue;
    ListenerSnapshot snapshot = Snapshot(**it);
    (*it)->Stop();
    listeners.erase(it);
    if (options_.metrics != nullptr) options_.metrics->ListenerRemoved(name);  // metrics hook
    return snapshot;
  }
  auto& observed = (*run)->observed;
  for (auto it = observed.begin(); it != observed.end(); ++it) {
    if ((*it)->name() != name) continue;
    ListenerSnapshot snapshot = Snapshot(**it, -1);
    observed.erase(it);
    if (options_.metrics != nullptr) options_.metrics->ListenerRemoved(name);  // metrics hook
    return snapshot;
  }
  return absl::NotFoundError(absl::StrCat("no listener named '", name, "'"));
}

absl::StatusOr<RunManager::CaptureStarted> RunManager::StartCapture(const Caller& caller,
                                                                    const std::string& run_id,
                                                                    const std::string& interface) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = Find(caller, run_id);
  if (!found.ok()) return found.status();
  Run* run = *found;
  std::lock_guard<std::mutex> run_lock(run->mu);
  if (run->capture != nullptr) return absl::AlreadyExistsError("a capture already runs");
  std::vector<uint16_t> ports = ListenerPortsLocked(run);
  if (ports.empty()) {
    return absl::FailedPreconditionError("capture: this host has no listeners to capture");
  }
  // The last kKeptCaptures captures stay on the agent (README: state dir); older ones go.
  constexpr size_t kKeptCaptures = 8;
  PruneCaptures(paths_.state_dir, kKeptCaptures - 1);
  const std::string file = absl::StrCat(paths_.state_dir, "/capture-", run_id, ".pcap");
  auto capture = PacketCapture::Start(interface.empty() ? "any" : interface, ports, file);
  if (!capture.ok()) return capture.status();
  run->capture = *std::move(capture);
  return CaptureStarted{run->capture->interface(), file};
}

absl::Status RunManager::StartFloods(const Caller& caller, const std::string& run_id,
                                     std::optional<std::chrono::system_clock::time_point> start_at,
                                     std::vector<FloodSpec> floods) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = Find(caller, run_id);
  if (!found.ok()) return found.status();
  Run* run = *found;
  // Listener pauses count from the flood start (listeners started later read flood_start).
  // Under run->mu.
  auto set_flood_start = [run](std::chrono::system_clock::time_point at) {
    run->flood_start = at;
    for (auto& listener : run->listeners) listener->SetFloodStart(at);
  };
  if (start_at && floods.empty()) {
    // The fire (or only the flood start, for a host whose listeners pause): armed floods start
    // at `start_at`.
    std::lock_guard<std::mutex> run_lock(run->mu);
    set_flood_start(*start_at);
    if (run->armed) {
      run->armed = false;
      run->fire_at = start_at;
      run->cv.notify_all();
    }
    return absl::OkStatus();
  }
  if (floods.empty()) return absl::OkStatus();  // nothing to arm
  // All floods of a host are planned and checked together (ports, descriptors, kernel memory)
  // before any starts; past the descriptor limit they run in worker processes.
  auto budget = ReadHostBudget(paths_.proc_sys_dir);
  if (!budget.ok()) return budget.status();
  auto plans = PlanFloods(floods, *budget);
  if (!plans.ok()) return plans.status();

  std::lock_guard<std::mutex> run_lock(run->mu);
  if (run->floods_running > 0) {
    return absl::FailedPreconditionError(run->armed
                                             ? "floods of this run are armed and not fired yet"
                                             : "floods of this run are still running");
  }
  if (start_at) {
    set_flood_start(*start_at);
  } else {
    run->armed = true;
    run->fire_at.reset();
  }
  for (auto& plan : *plans) {
    ++run->floods_running;
    run->flood_threads.emplace_back([this, run, plan = std::move(plan), start_at] {
      const FloodSpec& spec = plan.spec;
      std::optional<std::chrono::system_clock::time_point> at = start_at;
      if (!at) {  // armed: the plan is made and checked; wait for the fire
        std::unique_lock<std::mutex> wait_lock(run->mu);
        run->cv.wait(wait_lock, [&] { return run->fire_at.has_value() || run->stop.load(); });
        at = run->fire_at;
      }
      // The result (held sockets, worker processes in its keepalive) lives until the run ends.
      absl::StatusOr<FloodResult> result =
          at ? RunPlannedFlood(plan, *at, run->stop)
             : absl::AbortedError("the run ended before the armed flood was fired");
      std::vector<Waiter> waiters;
      {
        std::lock_guard<std::mutex> flood_lock(run->mu);
        if (options_.metrics != nullptr && at) {  // metrics hook: floods and connects by outcome
          if (result.ok()) {
            options_.metrics->FloodFinished(*result);
          } else {
            options_.metrics->FloodFailed();
          }
        }
        if (result.ok()) {
          run->flood_results.push_back(*std::move(result));
        } else {
          spdlog::error("flood {} failed: {}", spec.name, result.status().ToString());
          run->flood_errors.push_back(
              absl::StrCat("flood ", spec.name, ": ", result.status().message()));
        }
        --run->floods_running;
        run->cv.notify_all();
        if (run->floods_running == 0) {
          waiters = std::move(run->waiters);
          run->waiters.clear();
          if (!waiters.empty()) ++run->collecting;
        }
      }
      // On this flood thread (the teardown joins it), not under the run's lock.
      if (!waiters.empty()) Answer(run, std::move(waiters));
    });
  }
  return absl::OkStatus();
}

std::vector<uint16_t> RunManager::ListenerPortsLocked(const Run* run) {
  std::vector<uint16_t> ports;
  for (const auto& l : run->listeners) ports.push_back(l->bound().port());
  for (const auto& o : run->observed) ports.push_back(o->port());
  return ports;
}

void RunManager::StartDropEventsLocked(Run* run) {
  if (run->drop_events != nullptr) return;
  std::vector<uint16_t> ports = ListenerPortsLocked(run);
  if (ports.empty()) return;
  auto counter = DropEventCounter::Start(ports);
  if (counter.ok()) {
    run->drop_events = *std::move(counter);
  } else {
    run->drop_events_unavailable = std::string(counter.status().message());
  }
}

absl::StatusOr<CollectedRun> RunManager::BuildCollected(Run* run) {
  // One collection at a time (the first stops the capture); the sampler never waits for this.
  std::lock_guard<std::mutex> collect_lock(run->collect_mu);
  CollectedRun out;
  std::vector<std::shared_ptr<Listener>> listeners;
  std::vector<std::shared_ptr<ObservedListener>> observed;
  std::shared_ptr<PacketCapture> capture;
  DropEventCounter* drop_events = nullptr;
  bool has_ports = false;
  {
    std::lock_guard<std::mutex> run_lock(run->mu);
    if (!run->flood_errors.empty()) {
      return absl::InternalError(absl::StrJoin(run->flood_errors, "; "));
    }
    out.floods = run->flood_results;
    listeners = run->listeners;
    observed = run->observed;
    capture = run->capture;
    drop_events = run->drop_events.get();
    has_ports = !ListenerPortsLocked(run).empty();
    if (drop_events == nullptr) out.drop_events_unavailable = run->drop_events_unavailable;
  }
  for (auto& listener : listeners) {
    out.listeners.push_back(Snapshot(*listener));
    auto sockets = DumpTcpSockets(listener->bound().port());
    if (!sockets.ok()) return sockets.status();
    for (auto& s : *sockets) {
      if (s.state == TCP_LISTEN) continue;
      // Accepted or not is the kernel's to say (inode, state): the listener keeps no list.
      const bool accepted = WasAccepted(s);
      out.server_sockets.push_back(ServerSocketView{std::move(s.local), std::move(s.remote),
                                                    s.state, accepted, listener->spec().name});
    }
  }
  for (auto& o : observed) {
    // The owner's sockets: accepted or not is read from each socket's state and inode.
    auto sockets = DumpTcpSockets(o->port());
    if (!sockets.ok()) return sockets.status();
    int64_t accepted_now = 0;
    for (const auto& s : *sockets) {
      if (!o->Owns(s)) continue;
      const bool was_accepted = WasAccepted(s);
      accepted_now += was_accepted ? 1 : 0;
      out.server_sockets.push_back(
          ServerSocketView{s.local, s.remote, s.state, was_accepted, o->name()});
    }
    out.listeners.push_back(Snapshot(*o, accepted_now));
  }
  auto after = common::ReadKernelCounters();
  if (!after.ok()) return after.status();
  out.counter_deltas = common::CounterDeltas(run->counters_before, *after);
  if (drop_events != nullptr) {
    // The counter lives until the teardown, which waits for this collection.
    auto events = drop_events->Read();
    if (events.ok()) {
      out.drop_events = *std::move(events);
    } else {
      out.drop_events_unavailable = std::string(events.status().message());
    }
  } else if (!has_ports) {
    out.drop_events_unavailable.clear();
  }
  if (capture != nullptr) {
    // The first collection after this host's floods ends the capture; later ones reuse it.
    if (!run->capture_summary.has_value()) run->capture_summary = capture->Stop();
    out.capture_interface = capture->interface();
    if (run->capture_summary->ok()) {
      out.capture = **run->capture_summary;
    } else {
      out.capture_error = std::string(run->capture_summary->status().message());
    }
  }
  return out;
}

void RunManager::Answer(Run* run, std::vector<Waiter> waiters) {
  // One snapshot serves every waiter that wants one; wait-only waiters get an empty run.
  // The caller counted this collection in run->collecting; it is uncounted at the end.
  std::optional<absl::StatusOr<CollectedRun>> collected;
  for (auto& w : waiters) {
    if (w.wait_only) {
      w.done(CollectedRun{});
      continue;
    }
    if (!collected.has_value()) collected = BuildCollected(run);
    w.done(*collected);
  }
  std::lock_guard<std::mutex> run_lock(run->mu);
  --run->collecting;
  run->cv.notify_all();
}

absl::Status RunManager::Collect(const Caller& caller, const std::string& run_id, bool wait_only,
                                 DoneCallback done) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = Find(caller, run_id);
  if (!found.ok()) return found.status();
  Run* run = *found;
  std::lock_guard<std::mutex> run_lock(run->mu);
  if (run->floods_running > 0) {
    run->waiters.push_back(Waiter{std::move(done), wait_only});
    return absl::OkStatus();
  }
  // Floods are done: collect on a manager thread (the caller is a gRPC thread).
  ++run->collecting;
  std::vector<Waiter> waiter;
  waiter.push_back(Waiter{std::move(done), wait_only});
  Background([this, run, waiter = std::move(waiter)]() mutable { Answer(run, std::move(waiter)); });
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> RunManager::Subscribe(const Caller& caller, const std::string& run_id,
                                               SampleSink sink, std::function<void()> on_end) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = Find(caller, run_id);
  if (!found.ok()) return found.status();
  (*found)->watched = true;
  watchdog_cv_.notify_all();
  const uint64_t id = next_sink_++;
  sinks_.emplace(id, std::make_pair(std::move(sink), std::move(on_end)));
  return id;
}

void RunManager::Unsubscribe(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  sinks_.erase(id);
}

SampleValue RunManager::TakeSample(Run* run) {
  SampleValue sample;
  sample.at = std::chrono::system_clock::now();
  {
    std::lock_guard<std::mutex> run_lock(run->mu);
    for (auto& listener : run->listeners) {
      auto queue = QueryListenQueue(listener->bound().port());
      if (!queue.ok()) continue;  // stopped between the lock and the query
      listener->ObserveAcceptQueue(queue->accept_queue);
      sample.listeners.push_back({listener->spec().name, *queue});
    }
    for (auto& observed : run->observed) {
      auto queue = observed->Query();
      if (!queue.ok()) continue;  // the owner closed it: no sample rather than a made-up one
      sample.listeners.push_back({observed->name(), *queue});
    }
  }
  if (auto now = common::ReadKernelCounters(); now.ok()) {
    sample.counter_deltas = common::NonZero(common::CounterDeltas(run->counters_before, *now));
  }
  return sample;
}

void RunManager::SampleLoop(Run* run) {
  std::unique_lock<std::mutex> run_lock(run->mu);
  auto next = std::chrono::steady_clock::now();
  while (!run->sampler_stop) {
    run_lock.unlock();
    SampleValue sample = TakeSample(run);
    if (options_.metrics != nullptr) {  // metrics hook: listener queue gauges
      std::vector<ListenerQueueSample> queues;
      for (const auto& l : sample.listeners) queues.push_back({l.name, l.queue});
      options_.metrics->ListenersSampled(queues);
    }
    std::vector<SampleSink> sinks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, s] : sinks_) sinks.push_back(s.first);
    }
    for (auto& sink : sinks) sink(sample);
    run_lock.lock();
    next += run->interval;
    run->cv.wait_until(run_lock, next, [run] { return run->sampler_stop; });
  }
}

void RunManager::End(const Caller& caller, const std::string& run_id, EndCallback done) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (run_ != nullptr) {
      auto found = Find(caller, run_id);
      if (!found.ok() && found.status().code() == absl::StatusCode::kPermissionDenied) {
        lock.unlock();
        done(found.status());
        return;
      }
    }
  }
  // The teardown joins flood threads and runs iptables: never on the caller's (gRPC) thread.
  Background([this, run_id, done = std::move(done)] {
    done(EndNow(run_id, RunEndReason::kEndedByController));
  });
}

absl::StatusOr<std::map<std::string, int64_t>> RunManager::EndNow(const std::string& run_id,
                                                                  RunEndReason reason) {
  std::unique_ptr<Run> run;
  std::vector<std::function<void()>> on_end;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (run_ == nullptr || run_->id != run_id) {
      // Ending a run that another caller is ending: answer once it is really ended.
      idle_cv_.wait(lock, [&] { return tearing_down_ != run_id; });
      return std::map<std::string, int64_t>{};
    }
    run = std::move(run_);
    tearing_down_ = run_id;
    for (auto& [id, s] : sinks_) on_end.push_back(std::move(s.second));
    sinks_.clear();
  }
  watchdog_cv_.notify_all();
  auto restored = Teardown(std::move(run), std::move(on_end));
  if (options_.metrics != nullptr) {  // metrics hook: run end and its restore
    options_.metrics->RunEnded(reason);
    options_.metrics->RestoreDone(RestorePhase::kRunEnd, restored.ok());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    tearing_down_.clear();
  }
  idle_cv_.notify_all();
  return restored;
}

absl::StatusOr<std::map<std::string, int64_t>> RunManager::Teardown(
    std::unique_ptr<Run> run, std::vector<std::function<void()>> on_end) {
  // No manager lock here: flood threads and the sampler take run->mu and must be able to finish.
  run->stop = true;
  {
    // Armed floods wait on cv for their fire: wake them to see `stop` (under mu: no lost wake).
    std::lock_guard<std::mutex> run_lock(run->mu);
  }
  run->cv.notify_all();
  for (auto& t : run->flood_threads) t.join();
  {
    // Collections in progress read the run's listeners and capture: let them finish first.
    std::unique_lock<std::mutex> run_lock(run->mu);
    run->cv.wait(run_lock, [&] { return run->collecting == 0; });
    run->sampler_stop = true;
  }
  run->cv.notify_all();
  run->sampler.join();
  std::vector<Waiter> waiters;
  {
    std::lock_guard<std::mutex> run_lock(run->mu);
    waiters = std::move(run->waiters);
  }
  for (auto& w : waiters) {
    w.done(
        absl::AbortedError(absl::StrCat("run '", run->id, "' ended before its floods finished")));
  }
  for (auto& listener : run->listeners) listener->Stop();
  run->listeners.clear();
  // A collected capture small enough to have travelled to the controller is not kept here:
  // one file per run would pile up in the state dir.
  if (run->capture_summary.has_value() && run->capture_summary->ok()) {
    const std::string& file = (*run->capture_summary)->file;
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(file, ec);
    if (!ec && size <= kMaxShippedCapture) std::filesystem::remove(file, ec);
  }
  run->observed.clear();
  std::vector<std::string> problems;
  if (absl::Status s = run->shaping->Remove(); !s.ok()) {
    problems.push_back(absl::StrCat("removing shaping: ", s.message()));
  }
  absl::StatusOr<std::map<std::string, int64_t>> restored = run->settings->Restore();
  if (!restored.ok())
    problems.push_back(absl::StrCat("restoring settings: ", restored.status().message()));
  for (auto& f : on_end) f();
  spdlog::info("run {} ended", run->id);
  if (!problems.empty()) return absl::InternalError(absl::StrJoin(problems, "; "));
  return restored;
}

void RunManager::Abandon(const std::string& run_id, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (run_ == nullptr || run_->id != run_id) return;
  }
  spdlog::warn("ending run {}: {}; restoring every setting", run_id, why);
  Background([this, run_id] {
    if (auto s = EndNow(run_id, RunEndReason::kAbandoned); !s.ok()) {
      spdlog::error("restore after abandon: {}", s.status().ToString());
    }
  });
}

void RunManager::Shutdown() {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (run_ == nullptr) return;
    id = run_->id;
  }
  spdlog::warn("ending run {}: the agent is shutting down; restoring every setting", id);
  if (auto s = EndNow(id, RunEndReason::kShutdown); !s.ok()) {
    spdlog::error("restore at shutdown: {}", s.status().ToString());
  }
}

}  // namespace synq::agent
