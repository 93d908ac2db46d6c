#include "agent/metrics/agent_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/process_cpu.h"

namespace synq::agent {

absl::string_view RunEndReasonLabel(RunEndReason reason) {
  switch (reason) {
    case RunEndReason::kEndedByController:
      return "ended_by_controller";
    case RunEndReason::kLeaseExpired:
      return "lease_expired";
    case RunEndReason::kUnwatched:
      return "unwatched";
    case RunEndReason::kAbandoned:
      return "abandoned";
    case RunEndReason::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

namespace {

absl::string_view RestorePhaseLabel(RestorePhase phase) {
  return phase == RestorePhase::kStart ? "start" : "run_end";
}

// HELP text escapes backslash and newline (the format's rule; quotes stay).
std::string EscapeHelp(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Appends the HELP and TYPE lines of one metric family.
void Family(std::string& out, absl::string_view name, absl::string_view type,
            absl::string_view help) {
  absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ", type, "\n");
}

using Labels = std::vector<std::pair<std::string, std::string>>;

void Sample(std::string& out, absl::string_view name, const Labels& labels, double value) {
  absl::StrAppend(&out, name);
  if (!labels.empty()) {
    out += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ",", labels[i].first, "=\"",
                      EscapeLabelValue(labels[i].second), "\"");
    }
    out += '}';
  }
  // Integers print without an exponent; the rest with enough digits to round-trip.
  if (value == static_cast<double>(static_cast<int64_t>(value))) {
    absl::StrAppend(&out, " ", static_cast<int64_t>(value), "\n");
  } else {
    absl::StrAppend(&out, " ", absl::StrFormat("%.17g", value), "\n");
  }
}

// A counter family with one label, every known label value present (0 until it happens), so
// rate() works from the first scrape.
void LabelledCounter(std::string& out, absl::string_view name, absl::string_view help,
                     const std::string& label, const std::vector<std::string>& known,
                     const std::map<std::string, uint64_t>& counts) {
  Family(out, name, "counter", help);
  std::map<std::string, uint64_t> all = counts;
  for (const auto& k : known) all.emplace(k, 0);
  for (const auto& [value, count] : all) {
    Sample(out, name, {{label, value}}, static_cast<double>(count));
  }
}

// Process figures read at scrape time (the client libraries' standard process_* metrics).
void ProcessMetrics(std::string& out, std::chrono::system_clock::time_point started) {
  Family(out, "process_cpu_seconds_total", "counter",
         "User and system CPU time the agent process spent, in seconds.");
  Sample(out, "process_cpu_seconds_total", {},
         std::chrono::duration<double>(common::ProcessCpuTime()).count());
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  uint64_t resident = 0;
  if (statm >> pages >> resident) {
    Family(out, "process_resident_memory_bytes", "gauge",
           "Resident memory of the agent process, in bytes.");
    Sample(out, "process_resident_memory_bytes", {},
           static_cast<double>(resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE))));
  }
  std::error_code ec;
  uint64_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    Family(out, "process_open_fds", "gauge", "Open file descriptors of the agent process.");
    Sample(out, "process_open_fds", {}, static_cast<double>(fds));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    Family(out, "process_max_fds", "gauge", "The agent's open file descriptor limit (soft).");
    Sample(out, "process_max_fds", {}, static_cast<double>(limit.rlim_cur));
  }
  Family(out, "process_start_time_seconds", "gauge",
         "When the agent started, in seconds since the Unix epoch.");
  Sample(out, "process_start_time_seconds", {},
         std::chrono::duration<double>(started.time_since_epoch()).count());
}

}  // namespace

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

AgentMetrics::AgentMetrics(std::vector<std::pair<std::string, std::string>> build_labels)
    : build_labels_(std::move(build_labels)) {}

void AgentMetrics::RunBegun() {
  std::lock_guard<std::mutex> lock(mu_);
  ++runs_begun_;
  run_open_ = true;
}

void AgentMetrics::RunEnded(RunEndReason reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++runs_ended_[std::string(RunEndReasonLabel(reason))];
  run_open_ = false;
  listeners_.clear();
}

void AgentMetrics::FloodFinished(const FloodResult& result) {
  uint64_t errors = 0;
  for (const auto& [name, count] : result.errors) errors += count;
  std::lock_guard<std::mutex> lock(mu_);
  ++floods_["completed"];
  connect_attempts_ += result.attempted;
  connects_["established"] += result.established;
  connects_["reset"] += result.reset;
  connects_["refused"] += result.refused;
  connects_["timed_out"] += result.timed_out;
  connects_["error"] += errors;
  for (const auto& [name, count] : result.errors) connect_errors_[name] += count;
}

void AgentMetrics::FloodFailed() {
  std::lock_guard<std::mutex> lock(mu_);
  ++floods_["failed"];
}

void AgentMetrics::ListenerAdded(const std::string& name, const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_[name] = ListenerGauges{address, false, {}};
}

void AgentMetrics::ListenerRemoved(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.erase(name);
}

void AgentMetrics::ListenersSampled(const std::vector<ListenerQueueSample>& listeners) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, gauges] : listeners_) gauges.sampled = false;
  for (const auto& sample : listeners) {
    auto it = listeners_.find(sample.name);
    if (it == listeners_.end()) continue;  // stopped since the sample was taken
    it->second.sampled = true;
    it->second.queue = sample.queue;
  }
}

void AgentMetrics::RestoreDone(RestorePhase phase, bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string label(RestorePhaseLabel(phase));
  ++restores_[label];
  if (!ok) ++restore_failures_[label];
}

void AgentMetrics::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  serving_ = serving;
}

std::string AgentMetrics::Render() const {
  std::string out;
  out.reserve(4096);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Family(out, "synq_build_info", "gauge",
           "Always 1; the labels name the agent's version and flood engine.");
    Sample(out, "synq_build_info", build_labels_, 1);
    Family(out, "synq_serving", "gauge",
           "1 when the agent serves runs (grpc.health.v1 SERVING), 0 while a restore is pending "
           "or after one failed.");
    Sample(out, "synq_serving", {}, serving_ ? 1 : 0);
    Family(out, "synq_run_open", "gauge", "1 while a run is open on the agent.");
    Sample(out, "synq_run_open", {}, run_open_ ? 1 : 0);
    Family(out, "synq_runs_begun_total", "counter", "Runs opened by BeginRun.");
    Sample(out, "synq_runs_begun_total", {}, static_cast<double>(runs_begun_));
    LabelledCounter(out, "synq_runs_ended_total", "Runs ended, by why they ended.", "reason",
                    {"ended_by_controller", "lease_expired", "unwatched", "abandoned", "shutdown"},
                    runs_ended_);
    LabelledCounter(out, "synq_floods_total",
                    "Connect floods finished (completed) or that could not run (failed).",
                    "outcome", {"completed", "failed"}, floods_);
    Family(out, "synq_connect_attempts_total", "counter",
           "Connections the agent's floods attempted.");
    Sample(out, "synq_connect_attempts_total", {}, static_cast<double>(connect_attempts_));
    LabelledCounter(out, "synq_connects_total",
                    "Connection attempts of finished floods, by outcome (error: any other errno).",
                    "outcome", {"established", "reset", "refused", "timed_out", "error"},
                    connects_);
    if (!connect_errors_.empty()) {
      LabelledCounter(out, "synq_connect_errors_total",
                      "Connection attempts that failed with another errno, by errno name.", "errno",
                      {}, connect_errors_);
    }
    // Gauges exist only for listeners of the open run that the latest sample saw.
    struct Gauge {
      const char* name;
      const char* help;
      int64_t ListenQueue::*field;
    };
    static constexpr Gauge kGauges[] = {
        {"synq_listener_accept_queue_connections",
         "Connections waiting in the listener's accept queue at the latest sample.",
         &ListenQueue::accept_queue},
        {"synq_listener_accept_queue_max_connections",
         "The accept queue's limit as the kernel set it: min(backlog, somaxconn).",
         &ListenQueue::accept_queue_max},
        {"synq_listener_syn_recv_connections",
         "Request sockets (SYN-RECV) on the listener's port at the latest sample.",
         &ListenQueue::syn_recv},
    };
    bool any = false;
    for (const auto& [name, gauges] : listeners_) any = any || gauges.sampled;
    if (any) {
      for (const Gauge& gauge : kGauges) {
        Family(out, gauge.name, "gauge", gauge.help);
        for (const auto& [name, gauges] : listeners_) {
          if (!gauges.sampled) continue;
          Sample(out, gauge.name, {{"listener", name}, {"address", gauges.address}},
                 static_cast<double>(gauges.queue.*gauge.field));
        }
      }
    }
    LabelledCounter(out, "synq_restores_total",
                    "Restore passes: at agent start (journals a previous agent left) and at run "
                    "end.",
                    "phase", {"start", "run_end"}, restores_);
    LabelledCounter(out, "synq_restore_failures_total",
                    "Restore passes that left something changed (the agent then says why in "
                    "host info; at start it refuses runs).",
                    "phase", {"start", "run_end"}, restore_failures_);
  }
  ProcessMetrics(out, started_);
  return out;
}

}  // namespace synq::agent
