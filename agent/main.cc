// synq-agent: the per-host daemon. Serves AgentService over gRPC until SIGTERM/SIGINT, and
// restores every kernel setting and shaping rule it changed: at run end, when the controller
// goes away, on SIGTERM, and after a crash (from its journal, at the next start).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "agent/flood/flood_engine.h"
#include "agent/flood/flood_worker.h"
#include "agent/metrics/agent_metrics.h"
#include "agent/metrics/metrics_http.h"
#include "agent/run/run_session.h"
#include "agent/service/agent_servers.h"
#include "agent/service/agent_service.h"
#include "agent/service/tls_config.h"
#include "agent/shaping/shaper.h"
#include "agent/trace/drop_events.h"
#include "common/atomic_file.h"
#include "common/labels.h"
#include "common/unique_fd.h"
#include "grpcpp/grpcpp.h"
#include "spdlog/spdlog.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "synq-agent: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles (its debug default):
  // gRPC takes many mutexes per call, here as in the controller (where the bookkeeping,
  // GraphCycles, was ~6% of its CPU at 1,000 agents). Cycles are what TSan and the tests look
  // for, not production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Hidden mode: a flood worker process the agent started to hold sockets past its fd limit.
  if (synq::agent::IsFloodWorkerInvocation(argc, argv)) {
    return synq::agent::FloodWorkerMain(argc, argv);
  }
  CLI::App app{
      "synq-agent: opens listeners, runs io_uring (or epoll) connect floods, applies and restores "
      "kernel settings and link shaping, and samples kernel counters, on command of "
      "the synq controller over gRPC."};
  std::string listen = "0.0.0.0:7700";
  std::string netns;
  std::string state_dir = "/var/lib/synq-agent";
  std::string port_file;
  std::string log_level = "info";
  bool parent_death = false;
  pid_t parent_pid = 0;
  synq::agent::AgentTlsFlags tls;
  std::string allow_targets;
  std::string flood_engine = "auto";
  std::string health_listen;
  std::string health_port_file;
  std::string metrics_listen;
  std::string metrics_port_file;
  std::vector<std::string> label_args;
  app.add_option("--listen", listen,
                 "gRPC address: HOST:PORT (port 0 = any free port) or unix:/path")
      ->capture_default_str();
  app.add_option("--netns", netns,
                 "enter this named network namespace (/var/run/netns/NAME) first");
  app.add_option("--state-dir", state_dir, "where journals of changed settings are kept")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound gRPC address to this file when ready");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_flag("--parent-death", parent_death, "end (and restore) when the parent process dies");
  app.add_option("--parent-pid", parent_pid,
                 "with --parent-death: the parent's pid, so a parent that died before the agent "
                 "armed the check is seen (the parent may itself be pid 1 in a container)");
  app.add_option("--tls-cert", tls.cert, "PEM certificate of this agent (mutual TLS)");
  app.add_option("--tls-key", tls.key, "PEM private key of --tls-cert");
  app.add_option("--tls-ca", tls.ca, "PEM CA: callers must show a certificate it signed");
  app.add_flag("--insecure", tls.insecure,
               "serve without TLS on an address other hosts can reach (anyone who reaches it "
               "can start floods)");
  app.add_option("--allow-targets", allow_targets,
                 "CIDR,... the flood targets accepted (default: loopback plus the subnets "
                 "attached to this host's interfaces)");
  app.add_option("--flood-engine", flood_engine,
                 "auto (io_uring; epoll where io_uring is refused, e.g. by a container's "
                 "seccomp profile), io_uring, or epoll")
      ->capture_default_str();
  app.add_option("--health-listen", health_listen,
                 "HOST:PORT of a second, plaintext gRPC server that serves only grpc.health.v1 "
                 "(for kubelet's gRPC probes; it tells only whether the agent serves runs)");
  app.add_option("--health-port-file", health_port_file,
                 "write the bound --health-listen address to this file when ready");
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT to serve Prometheus metrics on, over HTTP at /metrics");
  app.add_option("--metrics-port-file", metrics_port_file,
                 "write the bound --metrics-listen address to this file when ready");
  app.add_option("--label", label_args,
                 "KEY=VALUE (repeatable): a label host info reports, which a host group's "
                 "select: matches (Kubernetes label syntax, e.g. node=$(NODE_NAME))");
  CLI11_PARSE(app, argc, argv);
  synq::common::Labels labels;
  for (const std::string& arg : label_args) {
    auto label = synq::common::ParseLabel(arg);
    if (!label.ok()) return Fail(absl::StrCat("--label: ", label.status().message()));
    if (!labels.insert(*std::move(label)).second) {
      return Fail(absl::StrCat("--label: '", arg.substr(0, arg.find('=')), "' given twice"));
    }
  }
  if (!health_port_file.empty() && health_listen.empty()) {
    return Fail("--health-port-file: needs --health-listen");
  }
  if (!metrics_port_file.empty() && metrics_listen.empty()) {
    return Fail("--metrics-port-file: needs --metrics-listen");
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("[%H:%M:%S.%e] [agent] [%l] %v");

  // Probed once: every flood of this agent and its workers runs on the engine chosen here.
  absl::StatusOr<synq::agent::FloodEngine> engine_asked =
      synq::agent::ParseFloodEngine(flood_engine);
  if (!engine_asked.ok()) return Fail(std::string(engine_asked.status().message()));
  absl::StatusOr<synq::agent::FloodEngineChoice> engine =
      synq::agent::ChooseFloodEngine(*engine_asked);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));
  if (engine->note.empty()) {
    spdlog::info("flood engine: {}", synq::agent::FloodEngineName(engine->engine));
  } else {
    spdlog::warn("flood engine: {} ({})", synq::agent::FloodEngineName(engine->engine),
                 engine->note);
  }
  synq::agent::SetProcessFloodEngine(*std::move(engine));

  // Signals are taken by sigwait below; block them before any thread exists so all inherit it.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (parent_death) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    // A parent that died before prctl() left us re-parented to a reaper: getppid() no longer
    // names the parent that started us. Pid 1 is no sign of that: synq itself is pid 1 as a
    // container's entrypoint. Only the pid the parent passed tells (without one, nothing to check).
    if (parent_pid > 0 && getppid() != parent_pid) {
      return Fail(absl::StrCat("--parent-pid ", parent_pid, ": parent already gone (parent is now ",
                               getppid(), ")"));
    }
  }

  if (!netns.empty()) {
    // Before any thread: setns(CLONE_NEWNET) affects only the calling thread.
    synq::common::UniqueFd ns(
        open(absl::StrCat("/var/run/netns/", netns).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) return Fail(absl::StrCat("network namespace '", netns, "': ", strerror(errno)));
    if (setns(ns.get(), CLONE_NEWNET) != 0) {
      return Fail(absl::StrCat("setns into '", netns, "': ", strerror(errno)));
    }
  }

  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  synq::agent::AgentPaths paths;
  paths.state_dir = state_dir;
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return Fail(absl::StrCat("--state-dir ", state_dir, ": ", ec.message()));

  auto security = synq::agent::ChooseServerCredentials(listen, tls);
  if (!security.ok()) return Fail(std::string(security.status().message()));
  if (security->insecure) {
    spdlog::warn(
        "serving WITHOUT TLS on {} (--insecure): anyone who reaches this port can start floods "
        "and change kernel settings",
        listen);
  }
  synq::agent::AccessPolicy policy;
  policy.insecure = security->insecure;
  if (!allow_targets.empty()) {
    auto parsed = synq::agent::TargetAllowList::Parse(allow_targets);
    if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
    policy.targets = *std::move(parsed);
  }

  // The servers start before the restore of what a previous agent left, so that probes see
  // NOT_SERVING while it is pending; runs are refused until it is done.
  synq::agent::AgentMetrics metrics(
      {{"version", SYNQ_VERSION},
       {"engine", synq::agent::FloodEngineName(synq::agent::ProcessFloodEngine().engine)},
       {"grpc_version", grpc::Version()}});
  synq::agent::RunManagerOptions run_options;
  run_options.metrics = &metrics;
  synq::agent::RunManager runs(paths, run_options);
  runs.RefuseRuns("it is still restoring what a previous agent left; try again shortly");
  synq::agent::AgentServiceImpl service(runs, policy, std::move(labels));
  synq::agent::EnableHealthService();
  synq::agent::HealthStatus health;
  auto main_server = synq::agent::StartAgentServer(listen, security->credentials, &service);
  if (!main_server.ok()) return Fail(std::string(main_server.status().message()));
  health.Track(main_server->server.get());
  std::optional<synq::agent::BoundServer> health_server;
  if (!health_listen.empty()) {
    auto started = synq::agent::StartHealthServer(health_listen);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    health_server = *std::move(started);
    health.Track(health_server->server.get());
  }
  std::unique_ptr<synq::agent::MetricsHttpServer> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = synq::agent::MetricsHttpServer::Start(metrics_listen, metrics);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    metrics_server = *std::move(started);
  }

  // A previous agent that crashed mid-run left journals: put the host back first. If that
  // fails the host is not as the agent found it: it refuses runs (and says why in host info)
  // rather than journal the leftovers as the next run's originals.
  std::vector<std::string> restore_problems;
  auto restored = synq::agent::RestoreFromJournal(paths.proc_sys_dir, paths.settings_journal());
  if (!restored.ok()) {
    spdlog::error("restoring settings from journal: {}", restored.status().ToString());
    restore_problems.push_back(
        absl::StrCat("restoring settings from journal: ", restored.status().message()));
  } else {
    for (const auto& [key, value] : *restored) {
      spdlog::warn("restored {} = {} left changed by a previous agent", key, value);
    }
  }
  if (auto s = synq::agent::RemoveShapingFromJournal(paths.shaping_journal()); !s.ok()) {
    spdlog::error("removing shaping left by a previous agent: {}", s.ToString());
    restore_problems.push_back(
        absl::StrCat("removing shaping left by a previous agent: ", s.message()));
  }
  // Trace instances the previous agent on this state dir journaled go whatever their pid shows;
  // then every synq instance whose agent is gone.
  auto traced = synq::agent::RemoveTraceInstancesFromJournal(paths.trace_journal());
  if (!traced.ok()) {
    spdlog::error("removing trace instances left by a previous agent: {}",
                  traced.status().ToString());
    restore_problems.push_back(std::string(traced.status().message()));
  }
  for (const auto& name : traced.value_or(std::vector<std::string>{})) {
    spdlog::warn("removed trace instance {} left by the previous agent", name);
  }
  for (const auto& name : synq::agent::RemoveStaleTraceInstances()) {
    spdlog::warn("removed trace instance {} left by an agent that is gone", name);
  }
  synq::agent::SetTraceJournal(paths.trace_journal());
  metrics.RestoreDone(synq::agent::RestorePhase::kStart, restore_problems.empty());
  if (restore_problems.empty()) {
    runs.RefuseRuns("");
  } else {
    runs.RefuseRuns(absl::StrCat(absl::StrJoin(restore_problems, "; "),
                                 " (fix it by hand, then restart the agent)"));
  }
  // Runs refused = NOT_SERVING: RunManager's refusal is set only here, at start.
  const bool serving = runs.refusal().empty();
  health.Set(serving);
  metrics.SetServing(serving);

  const std::string& address = main_server->address;
  spdlog::info("synq-agent listening on {}{} ({}); flood targets allowed: {}", address,
               netns.empty() ? "" : absl::StrCat(" (netns ", netns, ")"),
               security->tls ? absl::StrCat("mutual TLS as ", security->subject)
                             : (security->insecure ? "INSECURE, no TLS" : "local, no TLS"),
               absl::StrJoin(policy.targets.EffectiveStrings(), ","));
  if (health_server.has_value()) {
    spdlog::info("grpc.health.v1 only, plaintext, on {}; {}", health_server->address,
                 serving ? "SERVING" : "NOT_SERVING");
  }
  if (metrics_server != nullptr) {
    spdlog::info("Prometheus metrics on http://{}/metrics", metrics_server->address());
  }
  // The extra addresses first: whoever waits for --port-file finds them written too.
  if (health_server.has_value() && !health_port_file.empty()) {
    if (auto s = synq::common::WriteFileAtomically(health_port_file, health_server->address + "\n",
                                                   0644);
        !s.ok()) {
      return Fail(absl::StrCat("--health-port-file: ", s.message()));
    }
  }
  if (metrics_server != nullptr && !metrics_port_file.empty()) {
    if (auto s = synq::common::WriteFileAtomically(metrics_port_file,
                                                   metrics_server->address() + "\n", 0644);
        !s.ok()) {
      return Fail(absl::StrCat("--metrics-port-file: ", s.message()));
    }
  }
  if (!port_file.empty()) {
    if (auto s = synq::common::WriteFileAtomically(port_file, address + "\n", 0644); !s.ok()) {
      return Fail(absl::StrCat("--port-file: ", s.message()));
    }
  }

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: ending the open run and restoring", sig);
  runs.Shutdown();
  health.Set(false);
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(2);
  main_server->server->Shutdown(deadline);
  if (health_server.has_value()) health_server->server->Shutdown(deadline);
  return 0;
}
