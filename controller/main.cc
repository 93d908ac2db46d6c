// synq: the controller. Reads a scenario, drives every agent over gRPC, writes result.json and
// prints a table. Exit codes: 0 success, 1 an expectation failed, 2 invalid input, 3 an agent or
// host failed.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/labels.h"
#include "common/limits.h"
#include "common/net_address.h"
#include "common/process_cpu.h"
#include "controller/agent_client.h"
#include "controller/fleet/discovery.h"
#include "controller/fleet/group_merge.h"
#include "controller/fleet/members.h"
#include "controller/lab.h"
#include "controller/orchestrator.h"
#include "controller/result/format.h"
#include "controller/result/html_report.h"
#include "controller/result/junit.h"
#include "controller/result/result_json.h"
#include "controller/result/results_dir.h"
#include "controller/result/summary_line.h"
#include "controller/result/table.h"
#include "controller/run/progress.h"
#include "controller/run/setting_check.h"
#include "controller/scenario/discover_target.h"
#include "controller/scenario_loader.h"
#include "controller/search/search_run.h"
#include "controller/verdict/baseline.h"
#include "controller/verdict/diagnosis.h"
#include "controller/verdict/expectations.h"
#include "grpc/support/log.h"
#include "spdlog/spdlog.h"

namespace synq::controller {
namespace {

namespace rv1 = ::synq::result::v1;
namespace verdict = ::synq::controller::verdict;

constexpr int kExitOk = 0;
constexpr int kExitVerdictFailed = 1;
constexpr int kExitInvalidInput = 2;
constexpr int kExitHostFailed = 3;
constexpr char kLabStateDir[] = "/run/synq/lab";
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kDnsTimeout = std::chrono::milliseconds(2000);  // per try (two tries)
// A group member that does not answer within this is missing (a run needs `count` that do).
constexpr auto kMemberTimeout = std::chrono::seconds(5);

// The lab of the run in progress, torn down by the signal thread on Ctrl-C / SIGTERM.
std::mutex g_lab_mu;
Lab* g_lab = nullptr;

void StartSignalThread() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "synq: signal %d: stopping agents and removing test hosts\n", sig);
    {
      std::lock_guard<std::mutex> lock(g_lab_mu);
      if (g_lab != nullptr) (void)g_lab->Destroy();
    }
    // Remote agents see their Watch streams break when we exit and restore by themselves.
    _exit(128 + sig);
  }).detach();
}

// gRPC's own log lines (a refused TLS handshake, retries) go to our log at debug level: what
// matters reaches us as a status, and ConnectAgent explains a failed channel itself.
void LogGrpc(gpr_log_func_args* args) {
  spdlog::debug("grpc {}:{}: {}", args->file, args->line, args->message);
}

int Error(int code, const std::string& message) {
  std::fprintf(stderr, "synq: %s\n", message.c_str());
  return code;
}

// Where peers reach a remote agent's listeners: the agent's own IP, else its first address.
std::string RemoteHostAddress(const std::string& agent, const v1::HostInfo& info) {
  if (!absl::StartsWith(agent, "unix:")) {
    auto parsed = common::ParseSocketAddress(agent);
    if (parsed.ok()) {
      const std::string host = parsed->HostString();
      if (host != "0.0.0.0" && host != "::") return host;
    }
  }
  if (!info.addresses().empty()) return info.addresses(0);
  return "127.0.0.1";
}

void PrintErrors(const std::vector<ScenarioError>& errors, const std::string& file) {
  for (const auto& e : errors) std::fprintf(stderr, "%s: %s\n", file.c_str(), e.ToString().c_str());
}

// The checks beyond the loader's: expectations (paths against the result model) and baseline
// tolerance patterns.
std::vector<ScenarioError> CheckVerdicts(const Scenario& scenario) {
  std::vector<ScenarioError> errors = verdict::CheckExpectations(scenario);
  for (const auto& [pattern, percent] : scenario.baseline.fields) {
    if (absl::Status s = verdict::ValidateTolerancePattern(pattern); !s.ok()) {
      errors.push_back({absl::StrCat("baseline.fields.", pattern), std::string(s.message())});
    }
  }
  return errors;
}

int Validate(const std::string& file) {
  LoadResult loaded = LoadScenarioFile(file);
  if (loaded.ok()) loaded.errors = CheckVerdicts(loaded.scenario);
  if (!loaded.ok()) {
    PrintErrors(loaded.errors, file);
    return kExitInvalidInput;
  }
  auto plans = ExpandSweep(loaded.scenario);
  if (!plans.ok())
    return Error(kExitInvalidInput, absl::StrCat(file, ": ", plans.status().message()));
  std::printf("%s: valid: %zu host(s), %zu listener(s), %zu flood(s), %zu run(s)\n", file.c_str(),
              loaded.scenario.hosts.size(), loaded.scenario.listeners.size(),
              loaded.scenario.floods.size(), plans->size());
  return kExitOk;
}

// The command line's --tls-* flags.
struct TlsFlags {
  common::TlsFileSet files;
  std::string server_name;
};

// The command line's TLS material, checked (errors name the flag, the file and the reason).
absl::StatusOr<AgentSecurity> LoadCommandLineSecurity(const TlsFlags& flags) {
  if (flags.files.empty() && !flags.server_name.empty()) {
    return absl::InvalidArgumentError(
        "--tls-server-name: only with --tls-cert, --tls-key and --tls-ca");
  }
  if (!flags.files.empty() &&
      (flags.files.cert.empty() || flags.files.key.empty() || flags.files.ca.empty())) {
    return absl::InvalidArgumentError(
        "--tls-cert, --tls-key and --tls-ca: give all three (mutual TLS) or none");
  }
  return LoadAgentSecurity(flags.files, flags.server_name);
}

int Info(const std::vector<std::string>& agents, const TlsFlags& tls) {
  auto security = LoadCommandLineSecurity(tls);
  if (!security.ok()) return Error(kExitInvalidInput, std::string(security.status().message()));
  int code = kExitOk;
  // dns://SERVER/NAME:PORT (and dns:///NAME:PORT) stand for every agent the name resolves to.
  std::vector<std::string> addresses;
  for (const auto& address : agents) {
    if (!absl::StartsWith(address, "dns:")) {
      addresses.push_back(address);
      continue;
    }
    auto target = scenario::ParseDiscoverTarget(address);
    if (!target.ok()) {
      code = Error(kExitInvalidInput, absl::StrCat(address, ": ", target.status().message()));
      continue;
    }
    auto found = fleet::DiscoverAgents(*target, kDnsTimeout);
    if (!found.ok()) {
      code = Error(kExitHostFailed, absl::StrCat(address, ": ", found.status().message()));
      continue;
    }
    std::printf("%s: %zu agent(s): %s\n", address.c_str(), found->size(),
                absl::StrJoin(*found, " ").c_str());
    addresses.insert(addresses.end(), found->begin(), found->end());
  }
  // Every agent at once (a discovered group may be large); printed in the order given.
  std::vector<AgentTarget> targets;
  for (const auto& address : addresses) targets.push_back({address, *security});
  std::vector<absl::StatusOr<ConnectedAgent>> connected = ConnectAgents(targets, kConnectTimeout);
  for (size_t i = 0; i < addresses.size(); ++i) {
    const std::string& address = addresses[i];
    if (!connected[i].ok()) {
      code = Error(kExitHostFailed, std::string(connected[i].status().message()));
      continue;
    }
    const v1::HostInfo* info = &connected[i]->info;
    std::printf("%s\n  hostname  %s\n  kernel    %s\n  agent     %s\n  fd limit  %lu (hard %lu)\n",
                address.c_str(), info->hostname().c_str(), info->kernel_release().c_str(),
                info->agent_version().c_str(), static_cast<unsigned long>(info->fd_limit_soft()),
                static_cast<unsigned long>(info->fd_limit_hard()));
    std::printf("  addresses %s\n", absl::StrJoin(info->addresses(), " ").c_str());
    if (!info->labels().empty()) {
      const common::Labels labels(info->labels().begin(), info->labels().end());
      std::printf("  labels    %s\n", common::FormatLabels(labels).c_str());
    }
    // What this channel is: TLS when we used it (the agent required it), else plaintext, which
    // the agent reports as insecure when others can reach it.
    const bool tls_used = security->tls.has_value() && !absl::StartsWith(address, "unix:");
    const char* kind = "local (no TLS; unix socket or loopback only)";
    if (tls_used) kind = "mTLS";
    if (!tls_used && info->insecure()) kind = "insecure (no TLS; the agent runs with --insecure)";
    std::printf("  security  %s\n", kind);
    if (!info->flood_engine().empty()) {
      std::printf("  flood engine %s%s\n", info->flood_engine().c_str(),
                  info->flood_engine_note().empty()
                      ? ""
                      : absl::StrCat(" (", info->flood_engine_note(), ")").c_str());
    }
    std::printf("  allow targets %s\n", absl::StrJoin(info->allow_targets(), " ").c_str());
    if (!info->restore_error().empty()) {
      std::printf("  REFUSES RUNS: %s\n", info->restore_error().c_str());
    }
    for (const auto& s : info->settings()) {
      std::printf("  %-32s %ld\n", s.key().c_str(), static_cast<long>(s.value()));
    }
    for (int c : info->capabilities()) {
      std::printf("  can       %s\n", v1::Capability_Name(static_cast<v1::Capability>(c)).c_str());
    }
    for (const auto& m : info->missing_capabilities()) {
      std::printf("  cannot    %s: %s\n", v1::Capability_Name(m.capability()).c_str(),
                  m.reason().c_str());
    }
  }
  return code;
}

// Embedded host -> how many addresses the scenario gives it.
std::map<std::string, int> EmbeddedAddresses(const Scenario& scenario) {
  std::map<std::string, int> out;
  for (const auto& h : scenario.hosts) {
    if (h.embedded()) out[h.name] = static_cast<int>(h.addresses);
  }
  return out;
}

std::vector<std::string> EmbeddedHosts(const Scenario& scenario) {
  std::vector<std::string> names;
  for (const auto& h : scenario.hosts) {
    if (h.embedded()) names.push_back(h.name);
  }
  return names;
}

// What `synq run` was asked for on the command line.
struct RunCommand {
  std::string file;
  std::string out_dir = "synq-out";
  bool connections = false;
  std::string baseline_file;
  std::string junit_file;
  std::string tolerance;
  std::vector<std::string> tolerance_fields;
  TlsFlags tls;
  std::string lease;        // --lease: empty = derived
  std::string results_dir;  // --results-dir: each run's outputs in RESULTS/<time>-<scenario>/
};

// `--baseline latest`: the newest passing run in --results-dir.
constexpr char kBaselineLatest[] = "latest";

// Writes `text` to `path`; the error names the file.
absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Embedded hosts need root to be namespaces; without it, what needs one is refused up front.
absl::Status CheckEmbeddedWithoutRoot(const Scenario& scenario, const std::string& file) {
  if (geteuid() == 0) return absl::OkStatus();
  for (const auto& h : scenario.hosts) {
    if (h.embedded() && h.addresses > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": hosts.", h.name, ".addresses: ", h.addresses,
          " addresses need network namespaces; run synq as root or point the host at an agent"));
    }
  }
  for (const auto& name : EmbeddedHosts(scenario)) {
    if (scenario.settings.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": settings.", name,
          ": changing kernel settings on an embedded host needs root (each embedded host is "
          "then its own network namespace); run synq as root or point the host at an agent"));
    }
    for (const auto& s : scenario.shaping) {
      if (s.host == name) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": shaping: link shaping on embedded host '", name, "' needs root"));
      }
    }
  }
  return absl::OkStatus();
}

// Starts the scenario's embedded hosts (none: null) and registers them for the signal thread.
absl::StatusOr<std::unique_ptr<Lab>> StartEmbeddedHosts(const Scenario& scenario) {
  const std::vector<std::string> embedded = EmbeddedHosts(scenario);
  if (embedded.empty()) return std::unique_ptr<Lab>();
  const bool root = geteuid() == 0;
  if (root) RemoveStaleNamespaces();
  RemoveStaleRunDirs();
  LabOptions options;
  options.hosts = embedded;
  options.addresses = EmbeddedAddresses(scenario);
  options.prefix = absl::StrCat("synq-", getpid());
  options.state_dir = root ? absl::StrCat("/run/synq/run-", getpid())
                           : absl::StrCat("/tmp/synq-", getuid(), "-", getpid());
  options.isolated = root;
  options.agent_binary = FindAgentBinary();
  auto created = Lab::Create(options);
  if (!created.ok()) {
    return absl::UnavailableError(
        absl::StrCat("starting embedded hosts: ", created.status().message()));
  }
  std::lock_guard<std::mutex> lock(g_lab_mu);
  g_lab = created->get();
  return created;
}

void ForgetLab() {
  std::lock_guard<std::mutex> lock(g_lab_mu);
  g_lab = nullptr;
}

// Each remote host's TLS: its scenario tls: block (paths relative to the scenario file), else the
// command line's. Every file is checked before any host is touched.
absl::StatusOr<std::map<std::string, AgentSecurity>> LoadHostSecurity(const Scenario& scenario,
                                                                      const std::string& file,
                                                                      const TlsFlags& flags) {
  auto command_line = LoadCommandLineSecurity(flags);
  if (!command_line.ok()) return command_line.status();
  const std::filesystem::path dir = std::filesystem::path(file).parent_path();
  auto resolve = [&dir](const std::string& path) {
    return path.empty() || std::filesystem::path(path).is_absolute() ? path : (dir / path).string();
  };
  std::map<std::string, AgentSecurity> out;
  for (const auto& h : scenario.hosts) {
    if (h.embedded()) continue;
    if (h.tls.empty()) {
      out[h.name] = *command_line;
      continue;
    }
    const std::string prefix = absl::StrCat(file, ": hosts.", h.name, ".tls.");
    common::TlsFileSet files;
    files.cert = resolve(h.tls.cert);
    files.key = resolve(h.tls.key);
    files.ca = resolve(h.tls.ca);
    files.cert_name = prefix + "cert";
    files.key_name = prefix + "key";
    files.ca_name = prefix + "ca";
    auto security = LoadAgentSecurity(files, h.tls.server_name);
    if (!security.ok()) return security.status();
    out[h.name] = *std::move(security);
  }
  return out;
}

// Connects to every host's agent (embedded ones through the lab) and reads its host info; a group
// member keeps the connection its probe made (`probed`, by endpoint).
absl::StatusOr<std::vector<HostHandle>> ConnectHosts(
    const Scenario& scenario, const Lab* lab, const std::map<std::string, AgentSecurity>& security,
    std::map<std::string, ConnectedAgent> probed) {
  std::vector<HostHandle> hosts;
  std::vector<AgentTarget> targets;
  std::vector<std::optional<ConnectedAgent>> reused(scenario.hosts.size());
  for (size_t i = 0; i < scenario.hosts.size(); ++i) {
    const HostSpec& spec = scenario.hosts[i];
    HostHandle h;
    h.name = spec.name;
    std::string address = spec.agent;
    if (spec.embedded()) {
      const LabHost* lh = lab->Find(spec.name);
      address = lh->agent_address;
      h.address = lh->address;
      h.interface = lh->interface;
    } else if (auto p = probed.find(address); p != probed.end()) {
      reused[i] = std::move(p->second);  // a group member: its probe's connection
      probed.erase(p);
    }
    if (!reused[i]) {
      targets.push_back({address, spec.embedded() ? AgentSecurity{} : security.at(spec.name)});
    }
    hosts.push_back(std::move(h));
  }
  // Every agent at once: connecting and host info cost the slowest agent, not the sum.
  auto connected = ConnectAgents(targets, kConnectTimeout);
  size_t next = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    const auto& spec = scenario.hosts[i];
    HostHandle& h = hosts[i];
    absl::StatusOr<ConnectedAgent> c = reused[i]
                                           ? absl::StatusOr<ConnectedAgent>(*std::move(reused[i]))
                                           : std::move(connected[next++]);
    if (!c.ok()) {
      return absl::UnavailableError(absl::StrCat("hosts.", spec.name, ": ", c.status().message()));
    }
    h.client = std::move(c->client);
    h.info = std::move(c->info);
    if (!spec.embedded()) {
      h.address = RemoteHostAddress(spec.agent, h.info);
      h.interface = spec.interface;
    }
  }
  return hosts;
}

// One sweep point: a run, or with `search:` a knee search whose every trial is a run.
rv1::Run RunPoint(Orchestrator& orchestrator, const RunPlan& plan, int index,
                  std::vector<RunFailure>* failures) {
  if (!plan.scenario.search) return orchestrator.Run(plan, index, failures);
  search::SearchHooks hooks;
  hooks.on_trial = [index](const rv1::SearchTrial& t) {
    std::fprintf(stderr, "synq: run %d search trial (%s) at %s/s: %s: %s\n", index + 1,
                 t.phase().c_str(), result::FormatNumber(t.rate()).c_str(),
                 t.passed() ? "pass" : "FAIL", t.reason().c_str());
  };
  return search::RunSearch(
      plan, [&](const RunPlan& trial) { return orchestrator.Run(trial, index, failures); }, hooks);
}

// Every run's table, diagnosis, expectations and baseline regressions, from the typed result.
void PrintRuns(const rv1::Result& result) {
  std::cout << "scenario " << result.scenario() << "\n";
  for (const auto& run : result.runs()) {
    std::cout << result::RenderSummaryLine(result, run) << "\n"
              << result::RenderRunTable(run) << verdict::RenderDiagnosis(run)
              << verdict::RenderExpectations(run);
    for (const auto& check : run.baseline().checks()) {
      if (!check.passed()) std::cout << "  REGRESSION " << verdict::DescribeCheck(check) << "\n";
    }
    if (!run.baseline().note().empty())
      std::cout << "  baseline: " << run.baseline().note() << "\n";
  }
  std::cout.flush();
}

// result.json, report.html and the JUnit file; returns what could not be written.
std::vector<std::string> WriteOutputs(const rv1::Result& result, const RunCommand& cmd) {
  std::vector<std::string> written;
  std::vector<std::string> errors;
  auto keep = [&](const std::string& path, const absl::Status& s) {
    if (s.ok()) {
      written.push_back(path);
    } else {
      errors.emplace_back(s.message());
    }
  };
  const std::string json = cmd.out_dir + "/result.json";
  keep(json, result::WriteResultFile(result, json));
  const std::string report = cmd.out_dir + "/report.html";
  keep(report, WriteTextFile(report, result::RenderHtmlReport(result)));
  if (!cmd.junit_file.empty()) {
    keep(cmd.junit_file, WriteTextFile(cmd.junit_file, result::RenderJUnit(result)));
  }
  if (!written.empty()) {
    std::fprintf(stderr, "synq: wrote %s\n", absl::StrJoin(written, ", ").c_str());
  }
  return errors;
}

// --results-dir: this run's outputs go to a fresh RESULTS/<time>-<scenario>/ (the JUnit file
// too, unless --junit names one), and `--baseline latest` becomes RESULTS/latest's result.json;
// with no latest yet (the first run) the run goes on without a baseline and says so.
absl::Status UseResultsDir(const Scenario& scenario, RunCommand* cmd) {
  if (cmd->results_dir.empty()) {
    if (cmd->baseline_file == kBaselineLatest) {
      return absl::InvalidArgumentError("--baseline latest: only with --results-dir");
    }
    return absl::OkStatus();
  }
  if (cmd->baseline_file == kBaselineLatest) {
    auto latest = result::LatestResultFile(cmd->results_dir);
    if (!latest.ok()) return latest.status();
    if (latest->empty()) {
      std::fprintf(stderr,
                   "synq: --baseline latest: no %s/%s yet (first run into this folder): running "
                   "without a baseline\n",
                   cmd->results_dir.c_str(), result::kLatestLink);
    }
    cmd->baseline_file = *latest;
  }
  auto dir = result::CreateRunDir(cmd->results_dir, scenario.name, absl::Now());
  if (!dir.ok()) return dir.status();
  cmd->out_dir = *dir;
  if (cmd->junit_file.empty()) cmd->junit_file = *dir + "/junit.xml";
  return absl::OkStatus();
}

int Run(RunCommand cmd) {
  const std::string& file = cmd.file;
  LoadResult loaded = LoadScenarioFile(file);
  if (loaded.ok()) loaded.errors = CheckVerdicts(loaded.scenario);
  if (!loaded.ok()) {
    PrintErrors(loaded.errors, file);
    return kExitInvalidInput;
  }
  const Scenario& scenario = loaded.scenario;
  auto plans = ExpandSweep(scenario);
  if (!plans.ok())
    return Error(kExitInvalidInput, absl::StrCat(file, ": ", plans.status().message()));

  // Bad flags and an unreadable baseline are found before any host is touched.
  auto flags = verdict::ParseToleranceFlags(cmd.tolerance, cmd.tolerance_fields);
  if (!flags.ok()) return Error(kExitInvalidInput, std::string(flags.status().message()));
  const verdict::Tolerances tolerances =
      verdict::MergeTolerances(verdict::TolerancesFromScenario(scenario.baseline), *flags);
  if (absl::Status s = UseResultsDir(scenario, &cmd); !s.ok()) {
    return Error(kExitInvalidInput, std::string(s.message()));
  }
  std::optional<rv1::Result> baseline;
  if (!cmd.baseline_file.empty()) {
    auto read = result::ReadResultFile(cmd.baseline_file);
    if (!read.ok()) {
      return Error(kExitInvalidInput, absl::StrCat("--baseline: ", read.status().message()));
    }
    baseline = *std::move(read);
  }
  if (absl::Status s = CheckEmbeddedWithoutRoot(scenario, file); !s.ok()) {
    return Error(kExitInvalidInput, std::string(s.message()));
  }

  auto security = LoadHostSecurity(scenario, file, cmd.tls);
  if (!security.ok()) return Error(kExitInvalidInput, std::string(security.status().message()));
  std::chrono::nanoseconds lease{0};
  if (!cmd.lease.empty()) {
    auto parsed = ParseDuration(cmd.lease);
    // Agents refuse leases above their cap (common/limits.h).
    if (!parsed.ok() || parsed->count() <= 0 || *parsed > common::kMaxLease) {
      return Error(kExitInvalidInput, absl::StrCat("--lease ", cmd.lease, ": ",
                                                   parsed.ok() ? "must be above 0 and at most 7 days"
                                                               : parsed.status().message()));
    }
    lease = *parsed;
  }

  // Host groups: every group's members (the agents that answer), then member hosts in the
  // scenario and in every run's plan (controller/fleet/). The connect phase (Run.phase_ms)
  // counts discovering and probing the members, whose connections the run keeps, and
  // connecting every other agent; not starting embedded hosts.
  const auto probe_began = std::chrono::steady_clock::now();
  const std::chrono::nanoseconds probe_cpu_began = common::ProcessCpuTime();
  fleet::GroupPlan group_plan;
  std::map<std::string, ConnectedAgent> probed;  // members' connections, kept for the run
  if (std::any_of(scenario.hosts.begin(), scenario.hosts.end(),
                  [](const HostSpec& h) { return h.is_group(); })) {
    auto members =
        fleet::FindGroupMembers(scenario, *security, kMemberTimeout, kDnsTimeout, &probed);
    if (!members.ok()) return Error(kExitHostFailed, std::string(members.status().message()));
    for (RunPlan& plan : *plans) {
      auto expanded = fleet::ExpandGroups(plan.scenario, *members);
      if (!expanded.ok()) return Error(kExitInvalidInput, std::string(expanded.status().message()));
      plan.scenario = std::move(expanded->scenario);
      group_plan = std::move(expanded->plan);
    }
    auto expanded = fleet::ExpandGroups(scenario, *members);
    if (!expanded.ok()) return Error(kExitInvalidInput, std::string(expanded.status().message()));
    loaded.scenario = std::move(expanded->scenario);  // `scenario` now names the member hosts
    for (const auto& [member, m] : group_plan.hosts) (*security)[member] = security->at(m.group);
  }

  const auto probe_duration = std::chrono::steady_clock::now() - probe_began;
  const std::chrono::nanoseconds probe_cpu = common::ProcessCpuTime() - probe_cpu_began;

  auto lab = StartEmbeddedHosts(scenario);
  if (!lab.ok()) return Error(kExitHostFailed, std::string(lab.status().message()));
  const auto connect_began = std::chrono::steady_clock::now();
  const std::chrono::nanoseconds connect_cpu_began = common::ProcessCpuTime();
  auto hosts = ConnectHosts(scenario, lab->get(), *security, std::move(probed));
  const auto connect_duration =
      probe_duration + (std::chrono::steady_clock::now() - connect_began);
  const std::chrono::nanoseconds connect_cpu =
      probe_cpu + (common::ProcessCpuTime() - connect_cpu_began);
  if (!hosts.ok()) {
    ForgetLab();
    return Error(kExitHostFailed, std::string(hosts.status().message()));
  }

  // Keys and ranges are each agent's (HostInfo.setting_catalog): bad values are bad input (2),
  // found before any host is changed.
  if (auto bad = CheckSettingsAgainstCatalogs(*plans, *hosts); !bad.empty()) {
    for (const auto& e : bad) Error(kExitInvalidInput, absl::StrCat(file, ": ", e));
    hosts->clear();
    ForgetLab();
    return kExitInvalidInput;
  }

  // An agent that could not restore a previous agent's leftovers takes no run: say why now.
  bool refused = false;
  for (const auto& h : *hosts) {
    if (h.info.restore_error().empty()) continue;
    Error(kExitHostFailed,
          absl::StrCat("hosts.", h.name, ": the agent refuses runs: ", h.info.restore_error()));
    refused = true;
  }
  if (refused) {
    hosts->clear();
    ForgetLab();
    return kExitHostFailed;
  }

  std::set<std::string> flooding_hosts;
  for (const auto& f : scenario.floods) flooding_hosts.insert(f.host);
  Progress progress(stderr, plans->size(), flooding_hosts, isatty(STDERR_FILENO) == 1);
  RunOptions options;
  options.connections = cmd.connections;
  options.out_dir = cmd.out_dir;
  options.lease = lease;
  options.connect_duration = connect_duration;
  options.connect_cpu = connect_cpu;
  options.on_sample = [&progress](const std::string& host, const v1::Sample& sample) {
    progress.OnSample(host, sample);
  };
  Orchestrator orchestrator(*hosts, options);
  if (auto problems = orchestrator.CheckCapabilities(scenario); !problems.empty()) {
    for (const auto& p : problems)
      Error(kExitHostFailed, absl::StrCat("hosts.", p.host, ": ", p.message));
    ForgetLab();
    return kExitHostFailed;
  }

  rv1::Result result;
  result.set_scenario(scenario.name);
  result.set_file(file);
  result.set_synq_version(SYNQ_VERSION);
  std::vector<RunFailure> failures;
  for (size_t i = 0; i < plans->size(); ++i) {
    std::vector<std::string> params;
    for (const auto& [path, value] : (*plans)[i].params)
      params.push_back(path + "=" + value.Text());
    progress.BeginRun(i, absl::StrJoin(params, " "));
    rv1::Run run = RunPoint(orchestrator, (*plans)[i], static_cast<int>(i), &failures);
    // A failed merge is noted in the run (not_observed); the member rows stay.
    if (!group_plan.empty()) (void)fleet::MergeGroupRows(group_plan, &run);
    verdict::EvaluateExpectations((*plans)[i].scenario, &run);
    for (auto& finding : verdict::Diagnose(run)) *run.add_diagnosis() = std::move(finding);
    progress.EndRun(run);
    *result.add_runs() = std::move(run);
  }
  hosts->clear();  // close channels before the agents go away
  ForgetLab();
  if (*lab != nullptr) {
    if (absl::Status s = (*lab)->Destroy(); !s.ok()) {
      failures.push_back({"lab", absl::StrCat("removing embedded hosts: ", s.message())});
    }
  }

  bool baseline_passed = true;
  if (baseline) {
    baseline_passed =
        verdict::CompareWithBaseline(*baseline, cmd.baseline_file, tolerances, &result);
  }
  PrintRuns(result);
  const std::vector<std::string> write_errors = WriteOutputs(result, cmd);

  // Exit code: a failed host or an unwritten output (3) before a failed verdict (1).
  for (const auto& e : write_errors) Error(kExitHostFailed, e);
  if (!failures.empty() || !write_errors.empty()) {
    for (const auto& f : failures) {
      // A scenario host is named by its path in the file ("hosts.server"), like CheckCapabilities.
      const bool host = scenario.FindHost(f.host) != nullptr;
      Error(kExitHostFailed, absl::StrCat(host ? "hosts." : "", f.host, ": ", f.message));
    }
    return kExitHostFailed;
  }
  const bool expectations_passed = verdict::ExpectationsPassed(result);
  if (!expectations_passed) Error(kExitVerdictFailed, "an expectation failed (listed above)");
  if (!baseline_passed) {
    Error(kExitVerdictFailed, absl::StrCat("regression against ", cmd.baseline_file));
  }
  const int code = expectations_passed && baseline_passed ? kExitOk : kExitVerdictFailed;
  if (cmd.results_dir.empty()) return code;
  // Only a passing run becomes the next run's baseline: a regression keeps failing every night
  // against the last good run until it is fixed (or accepted by pointing latest at it by hand).
  if (code != kExitOk) {
    std::fprintf(stderr, "synq: %s/%s unchanged (this run failed)\n", cmd.results_dir.c_str(),
                 result::kLatestLink);
    return code;
  }
  if (absl::Status s = result::UpdateLatest(cmd.results_dir, cmd.out_dir); !s.ok()) {
    return Error(kExitHostFailed, absl::StrCat("--results-dir: ", s.message()));
  }
  std::fprintf(stderr, "synq: %s/%s -> %s\n", cmd.results_dir.c_str(), result::kLatestLink,
               cmd.out_dir.c_str());
  return code;
}

int Compare(const std::string& old_file, const std::string& new_file, const std::string& tolerance,
            const std::vector<std::string>& tolerance_fields) {
  auto flags = verdict::ParseToleranceFlags(tolerance, tolerance_fields);
  if (!flags.ok()) return Error(kExitInvalidInput, std::string(flags.status().message()));
  auto old_result = result::ReadResultFile(old_file);
  if (!old_result.ok()) return Error(kExitInvalidInput, std::string(old_result.status().message()));
  auto new_result = result::ReadResultFile(new_file);
  if (!new_result.ok()) return Error(kExitInvalidInput, std::string(new_result.status().message()));
  std::cout << verdict::RenderComparison(*old_result, old_file, *new_result, new_file, *flags);
  rv1::Result compared = *new_result;
  return verdict::CompareWithBaseline(*old_result, old_file, *flags, &compared)
             ? kExitOk
             : kExitVerdictFailed;
}

int LabUp(const std::string& file) {
  if (geteuid() != 0) return Error(kExitInvalidInput, "lab up: needs root (network namespaces)");
  LoadResult loaded = LoadScenarioFile(file);
  if (!loaded.ok()) {
    PrintErrors(loaded.errors, file);
    return kExitInvalidInput;
  }
  if (std::filesystem::exists(absl::StrCat(kLabStateDir, "/lab.json"))) {
    return Error(kExitInvalidInput, "lab up: a lab is already up; run `synq lab down` first");
  }
  LabOptions options;
  options.hosts = EmbeddedHosts(loaded.scenario);
  options.addresses = EmbeddedAddresses(loaded.scenario);
  options.prefix = "synq-lab";
  options.state_dir = kLabStateDir;
  options.isolated = true;
  options.persistent = true;
  options.agent_binary = FindAgentBinary();
  auto lab = Lab::Create(options);
  if (!lab.ok()) return Error(kExitHostFailed, absl::StrCat("lab up: ", lab.status().message()));
  if (absl::Status s = (*lab)->Save(); !s.ok()) {
    (void)(*lab)->Destroy();
    return Error(kExitHostFailed, std::string(s.message()));
  }
  for (const auto& h : (*lab)->hosts()) {
    std::printf("%-12s agent %-40s address %-14s netns %s\n", h.name.c_str(),
                h.agent_address.c_str(), h.address.c_str(), h.netns.c_str());
  }
  return kExitOk;
}

int LabDown() {
  // Leftovers of runs whose synq and reaper were both killed go too.
  if (geteuid() == 0) RemoveStaleNamespaces();
  RemoveStaleRunDirs();
  auto lab = Lab::Load(kLabStateDir);
  if (!lab.ok())
    return Error(kExitInvalidInput, absl::StrCat("lab down: ", lab.status().message()));
  if (absl::Status s = (*lab)->Destroy(); !s.ok()) {
    return Error(kExitHostFailed, absl::StrCat("lab down: ", s.message()));
  }
  std::printf("lab down: agents stopped, namespaces deleted\n");
  return kExitOk;
}

}  // namespace
}  // namespace synq::controller

int main(int argc, char** argv) {
  using namespace synq::controller;
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles (its debug default):
  // gRPC takes many mutexes per call, and at 1,000 agents the bookkeeping (GraphCycles) was ~6%
  // of the controller's CPU. Cycles are what TSan and the tests look for, not production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{
      "synq: runs TCP handshake load-test scenarios (listen backlogs, somaxconn, SYN and "
      "accept queues) on synq-agents and reports outcomes and kernel counters."};
  app.require_subcommand(1);
  std::string file;
  RunCommand run_cmd;
  std::vector<std::string> agents;
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();

  auto* run =
      app.add_subcommand("run", "run a scenario; writes OUT/result.json and prints a table");
  run->add_option("scenario", run_cmd.file, "scenario YAML file")->required();
  run->add_option("--out", run_cmd.out_dir, "output folder")->capture_default_str();
  run->add_flag("--connections", run_cmd.connections,
                "include every connection attempt in result.json");
  auto* out_flag = run->get_option("--out");
  run->add_option("--results-dir", run_cmd.results_dir,
                  "keep outputs in DIR/<UTC time>-<scenario>/ (result.json, report.html, "
                  "junit.xml) and point DIR/latest at the newest passing run")
      ->excludes(out_flag);
  run->add_option("--baseline", run_cmd.baseline_file,
                  "compare every run with the matching run of this result.json (exit 1 on a "
                  "regression); 'latest' = DIR/latest of --results-dir (none yet: no baseline)");
  run->add_option("--lease", run_cmd.lease,
                  "how long each agent keeps a run open before ending it by itself, e.g. 5s "
                  "(default: twice the floods' worst-case time + 2m; a shorter one cuts the run)");
  run->add_option("--junit", run_cmd.junit_file, "write a JUnit XML report to this file");
  run->add_option("--tolerance", run_cmd.tolerance,
                  "default baseline tolerance, e.g. 10% (overrides the scenario's)");
  run->add_option("--tolerance-field", run_cmd.tolerance_fields,
                  "PATTERN=PERCENT, e.g. 'floods.*.connect_latency_ms.p99=25%' (repeatable)");
  auto add_tls_flags = [](CLI::App* command, TlsFlags& tls) {
    command->add_option("--tls-cert", tls.files.cert,
                        "PEM certificate the controller shows to agents (mutual TLS)");
    command->add_option("--tls-key", tls.files.key, "PEM private key of --tls-cert");
    command->add_option("--tls-ca", tls.files.ca, "PEM CA that signed the agents' certificates");
    command->add_option("--tls-server-name", tls.server_name,
                        "name to check on the agents' certificates (default: the address's host)");
  };
  add_tls_flags(run, run_cmd.tls);
  std::string old_file;
  std::string new_file;
  auto* compare = app.add_subcommand(
      "compare", "compare two result.json files run by run (exit 1 on a regression)");
  compare->add_option("old", old_file, "baseline result.json")->required();
  compare->add_option("new", new_file, "result.json to check")->required();
  compare->add_option("--tolerance", run_cmd.tolerance, "default tolerance, e.g. 10%");
  compare->add_option("--tolerance-field", run_cmd.tolerance_fields,
                      "PATTERN=PERCENT (repeatable)");
  auto* validate = app.add_subcommand("validate", "check a scenario file and list every error");
  validate->add_option("scenario", file, "scenario YAML file")->required();
  auto* info = app.add_subcommand("info", "show host info of running agents");
  info->add_option("agents", agents,
                   "agent addresses (HOST:PORT, unix:/path, or dns://SERVER/NAME:PORT / "
                   "dns:///NAME:PORT for every agent the name resolves to)")
      ->required();
  TlsFlags info_tls;
  add_tls_flags(info, info_tls);
  auto* lab = app.add_subcommand("lab", "keep a set of namespace hosts with agents up");
  lab->require_subcommand(1);
  auto* lab_up = lab->add_subcommand("up", "create the scenario's hosts and start their agents");
  lab_up->add_option("scenario", file, "scenario YAML file")->required();
  auto* lab_down = lab->add_subcommand("down", "stop the lab's agents and delete its namespaces");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports through exceptions; this is the boundary where they become exit codes.
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitInvalidInput;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  gpr_set_log_function(LogGrpc);
  StartSignalThread();
  if (*run) return Run(run_cmd);
  if (*validate) return Validate(file);
  if (*compare) return Compare(old_file, new_file, run_cmd.tolerance, run_cmd.tolerance_fields);
  if (*info) return Info(agents, info_tls);
  if (*lab_up) return LabUp(file);
  if (*lab_down) return LabDown();
  return kExitInvalidInput;
}
