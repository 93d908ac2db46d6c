#include "agent/trace/drop_events.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

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

// Whether `pid` is a running synq-agent (not a process that reused the pid).
bool AgentAlive(pid_t pid) {
  std::string comm;
  if (!ReadFile(absl::StrCat("/proc/", pid, "/comm"), &comm)) return false;
  return absl::StripAsciiWhitespace(comm) == "synq-agent";
}

}  // namespace

std::vector<std::string> RemoveStaleTraceInstances() {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(absl::StrCat(kTracefs, "/instances"), ec)) {
    const std::string name = entry.path().filename().string();
    // "synq-<pid>-<n>"
    const std::vector<std::string> parts = absl::StrSplit(name, '-');
    pid_t pid = 0;
    if (parts.size() != 3 || parts[0] != "synq" || !absl::SimpleAtoi(parts[1], &pid)) continue;
    if (AgentAlive(pid)) continue;
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

DropEventCounter::~DropEventCounter() { RemoveInstance(dir_); }

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
