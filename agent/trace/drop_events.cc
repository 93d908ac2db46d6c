#include "agent/trace/drop_events.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/atomic_file.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace synq::agent {
namespace {

constexpr char kTracefs[] = "/sys/kernel/tracing";

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  out << text;
  out.flush();
  if (!out) return absl::ErrnoToStatus(errno, absl::StrCat("write ", path));
  return absl::OkStatus();
}

// The numeric value of a drop reason in this kernel's kfree_skb format: `{ 40, "TCP_..." }`.
absl::StatusOr<int> DropReasonValue(const std::string& reason) {
  std::string format;
  if (!ReadFile(absl::StrCat(kTracefs, "/events/skb/kfree_skb/format"), &format)) {
    return absl::UnavailableError("no skb:kfree_skb trace event");
  }
  const size_t name = format.find(absl::StrCat("\"", reason, "\""));
  const size_t brace = name == std::string::npos ? name : format.rfind('{', name);
  int value = 0;
  if (brace == std::string::npos ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(format).substr(
                            brace + 1, format.find(',', brace) - brace - 1)),
                        &value)) {
    return absl::UnavailableError(absl::StrCat("kfree_skb has no drop reason ", reason));
  }
  return value;
}

}  // namespace

std::string TracefsUnavailableReason() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(absl::StrCat(kTracefs, "/instances"), ec)) {
    if (geteuid() != 0) return "tracefs is not mounted and mounting it needs root";
    if (mount("nodev", kTracefs, "tracefs", 0, nullptr) != 0) {
      return absl::StrCat("tracefs is not mounted at ", kTracefs,
                          " and mount failed: ", strerror(errno));
    }
  }
  for (const char* e : {"skb/kfree_skb", "tcp/tcp_retransmit_synack", "tcp/tcp_send_reset"}) {
    if (!fs::exists(absl::StrCat(kTracefs, "/events/", e), ec)) {
      return absl::StrCat("trace event ", e, " is not in this kernel");
    }
  }
  if (access(absl::StrCat(kTracefs, "/instances").c_str(), W_OK) != 0) {
    return "tracefs instances are not writable (needs root)";
  }
  return "";
}

namespace {

constexpr const char* kEvents[] = {"skb/kfree_skb", "tcp/tcp_retransmit_synack",
                                   "tcp/tcp_send_reset"};

// Disables the instance's events and removes it.
void RemoveInstance(const std::string& dir) {
  for (const char* e : kEvents) (void)WriteFile(absl::StrCat(dir, "/events/", e, "/enable"), "0");
  rmdir(dir.c_str());
}

// Whether `pid` is a running synq-agent (not a process that reused the pid). A SIGKILLed agent
// its parent has not reaped yet is a zombie: still in /proc with its comm, but gone.
bool AgentAlive(pid_t pid) {
  std::string stat;
  if (!ReadFile(absl::StrCat("/proc/", pid, "/stat"), &stat)) return false;
  // "1234 (synq-agent) S ...": the comm may hold spaces and parentheses; the state follows the
  // last ')'.
  const size_t open = stat.find('(');
  const size_t close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) {
    return false;
  }
  const char state = stat[close + 2];
  return stat.substr(open + 1, close - open - 1) == "synq-agent" && state != 'Z' && state != 'X';
}

// "synq-<pid>-<n>", nothing else: names read from a journal end up in a path.
bool ParseInstanceName(const std::string& name, pid_t* pid) {
  const std::vector<std::string> parts = absl::StrSplit(name, '-');
  int n = 0;
  return parts.size() == 3 && parts[0] == "synq" && absl::SimpleAtoi(parts[1], pid) && *pid > 0 &&
         absl::SimpleAtoi(parts[2], &n) && n >= 0 && name == absl::StrCat("synq-", *pid, "-", n);
}

// The instances this process has, journaled on every change.
struct TraceJournal {
  std::mutex mu;
  std::string path;
  std::set<std::string> live;

  void Update(const std::string& name, bool add) {
    std::lock_guard<std::mutex> lock(mu);
    if (add) {
      live.insert(name);
    } else {
      live.erase(name);
    }
    if (path.empty()) return;
    absl::Status s = live.empty() ? (::unlink(path.c_str()) == 0 || errno == ENOENT
                                         ? absl::OkStatus()
                                         : absl::ErrnoToStatus(errno, "unlink " + path))
                                  : common::WriteFileAtomically(
                                        path, nlohmann::json{{"instances", live}}.dump() + "\n");
    if (!s.ok()) spdlog::warn("trace instance journal: {}", s.ToString());
  }
};

TraceJournal& Journal() {
  static TraceJournal* journal = new TraceJournal();  // outlives every counter
  return *journal;
}

}  // namespace

void SetTraceJournal(std::string path) {
  std::lock_guard<std::mutex> lock(Journal().mu);
  Journal().path = std::move(path);
}

absl::StatusOr<std::vector<std::string>> RemoveTraceInstancesFromJournal(const std::string& path) {
  std::vector<std::string> removed;
  std::string text;
  absl::Status read = common::ReadWholeFile(path, &text);
  if (absl::IsNotFound(read)) return removed;
  if (!read.ok()) return read;
  auto refused = [&path](const std::string& why) {
    return absl::DataLossError(absl::StrCat("trace journal ", path, " refused (kept): ", why));
  };
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("instances") ||
      !doc["instances"].is_array()) {
    return refused("not {\"instances\": [...]}");
  }
  std::vector<std::string> names;
  for (const auto& j : doc["instances"]) {
    pid_t pid = 0;
    if (!j.is_string() || !ParseInstanceName(j.get<std::string>(), &pid)) {
      return refused(absl::StrCat(j.dump(), " is not a synq-<pid>-<n> instance name"));
    }
    names.push_back(j.get<std::string>());
  }
  std::vector<std::string> failed;
  for (const std::string& name : names) {
    const std::string dir = absl::StrCat(kTracefs, "/instances/", name);
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) continue;
    RemoveInstance(dir);
    if (std::filesystem::exists(dir, ec)) {
      failed.push_back(name);
    } else {
      removed.push_back(name);
    }
  }
  if (!failed.empty()) {
    return absl::InternalError(absl::StrCat("trace journal ", path, ": cannot remove ",
                                            absl::StrJoin(failed, ", "), " (kept)"));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, "unlink " + path);
  }
  return removed;
}

std::vector<std::string> RemoveStaleTraceInstances() {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(absl::StrCat(kTracefs, "/instances"), ec)) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    if (!ParseInstanceName(name, &pid)) continue;
    if (pid == getpid() || AgentAlive(pid)) continue;
    RemoveInstance(entry.path().string());
    if (!fs::exists(entry.path(), ec)) removed.push_back(name);
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<DropEventCounter>> DropEventCounter::Start(
    const std::vector<uint16_t>& ports) {
  if (std::string why = TracefsUnavailableReason(); !why.empty()) {
    return absl::FailedPreconditionError(why);
  }
  static std::atomic<int> counter{0};
  const std::string dir =
      absl::StrCat(kTracefs, "/instances/synq-", getpid(), "-", counter.fetch_add(1));
  if (mkdir(dir.c_str(), 0700) != 0) return absl::ErrnoToStatus(errno, "mkdir " + dir);
  std::unique_ptr<DropEventCounter> self(new DropEventCounter(dir));
  Journal().Update(std::filesystem::path(dir).filename(), /*add=*/true);
  if (absl::Status s = WriteFile(dir + "/buffer_size_kb", "4096"); !s.ok()) return s;
  auto reason = DropReasonValue("TCP_LISTEN_OVERFLOW");
  if (!reason.ok()) return reason.status();
  if (absl::Status s =
          WriteFile(dir + "/events/skb/kfree_skb/filter", absl::StrCat("reason == ", *reason));
      !s.ok()) {
    return s;
  }
  std::vector<std::string> sport;
  for (uint16_t p : ports) sport.push_back(absl::StrCat("sport == ", p));
  const std::string port_filter = sport.empty() ? "" : absl::StrJoin(sport, " || ");
  if (!port_filter.empty()) {
    if (absl::Status s = WriteFile(dir + "/events/tcp/tcp_retransmit_synack/filter", port_filter);
        !s.ok()) {
      return s;
    }
  }
  for (const char* e : kEvents) {
    if (absl::Status s = WriteFile(absl::StrCat(dir, "/events/", e, "/enable"), "1"); !s.ok()) {
      return s;
    }
  }
  self->ports_ = ports;
  return self;
}

DropEventCounter::~DropEventCounter() {
  // rmdir of an instance can fail with EBUSY for a moment after its events are disabled (the
  // kernel still holds a reference to an event file): retry briefly before leaving it to the
  // journal.
  std::error_code ec;
  for (int attempt = 0; attempt < 50; ++attempt) {
    RemoveInstance(dir_);
    if (!std::filesystem::exists(dir_, ec)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Still there (busy): keep it journaled for the next agent.
  if (!std::filesystem::exists(dir_, ec)) {
    Journal().Update(std::filesystem::path(dir_).filename(), /*add=*/false);
  }
}

absl::StatusOr<std::map<std::string, int64_t>> DropEventCounter::Read() {
  std::string trace;
  if (!ReadFile(dir_ + "/trace", &trace)) return absl::ErrnoToStatus(errno, "read " + dir_);
  std::map<std::string, int64_t> counts = {
      {"kfree_skb:TCP_LISTEN_OVERFLOW", 0}, {"tcp_retransmit_synack", 0}, {"tcp_send_reset", 0}};
  std::istringstream lines(trace);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.find(" kfree_skb:") != std::string::npos) {
      ++counts["kfree_skb:TCP_LISTEN_OVERFLOW"];
    } else if (line.find(" tcp_retransmit_synack:") != std::string::npos) {
      ++counts["tcp_retransmit_synack"];
    } else if (line.find(" tcp_send_reset:") != std::string::npos) {
      // tcp_send_reset has no port fields to filter on: match "src=ADDR:PORT" in the text.
      bool ours = ports_.empty();
      for (uint16_t p : ports_) {
        if (line.find(absl::StrCat(":", p, " dest=")) != std::string::npos) ours = true;
      }
      if (ours) ++counts["tcp_send_reset"];
    }
  }
  return counts;
}

}  // namespace synq::agent
