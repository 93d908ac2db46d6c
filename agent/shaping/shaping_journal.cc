#include "agent/shaping/shaping_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "nlohmann/json.hpp"

namespace synq::agent {
namespace {

using nlohmann::json;
constexpr int kJournalVersion = 1;

bool IsStringArray(const json& j) {
  if (!j.is_array()) return false;
  for (const auto& e : j) {
    if (!e.is_string()) return false;
  }
  return true;
}

}  // namespace

std::string EncodeJournal(const std::vector<JournalEntry>& entries) {
  json doc = {{"version", kJournalVersion}, {"pid", ::getpid()}, {"entries", json::array()}};
  for (const auto& e : entries) {
    json entry;
    if (e.backend == ShapingBackend::kNetem) {
      entry = {
          {"backend", "netem"}, {"ifindex", e.ifindex}, {"ifname", e.ifname}, {"handle", e.handle}};
    } else {
      json rules = json::array();
      for (const auto& r : e.rules) rules.push_back({{"add", r.add}, {"remove", r.remove}});
      entry = {{"backend", "nfqueue"}, {"queue_num", e.queue_num}, {"rules", rules}};
    }
    doc["entries"].push_back(entry);
  }
  return doc.dump(2) + "\n";
}

absl::StatusOr<std::vector<JournalEntry>> DecodeJournal(const std::string& text) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [](const std::string& why) { return absl::DataLossError("shaping journal: " + why); };
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  if (!doc.contains("version") || doc["version"] != kJournalVersion) return bad("unknown version");
  if (!doc.contains("entries") || !doc["entries"].is_array()) return bad("no entries array");
  std::vector<JournalEntry> entries;
  for (const auto& j : doc["entries"]) {
    if (!j.is_object() || !j.contains("backend") || !j["backend"].is_string()) {
      return bad("entry without backend");
    }
    JournalEntry e;
    const std::string backend = j["backend"].get<std::string>();
    if (backend == "netem") {
      if (!j.contains("ifindex") || !j["ifindex"].is_number_integer() || !j.contains("ifname") ||
          !j["ifname"].is_string() || !j.contains("handle") || !j["handle"].is_number_unsigned()) {
        return bad("netem entry needs ifindex, ifname, handle");
      }
      e.backend = ShapingBackend::kNetem;
      e.ifindex = j["ifindex"].get<int>();
      e.ifname = j["ifname"].get<std::string>();
      e.handle = j["handle"].get<uint32_t>();
    } else if (backend == "nfqueue") {
      if (!j.contains("queue_num") || !j["queue_num"].is_number_integer() || !j.contains("rules") ||
          !j["rules"].is_array()) {
        return bad("nfqueue entry needs queue_num, rules");
      }
      e.backend = ShapingBackend::kNfqueue;
      e.queue_num = j["queue_num"].get<int>();
      for (const auto& r : j["rules"]) {
        if (!r.is_object() || !r.contains("add") || !IsStringArray(r["add"]) ||
            !r.contains("remove") || !IsStringArray(r["remove"]) || r["remove"].empty()) {
          return bad("nfqueue rule needs add and remove argv");
        }
        e.rules.push_back({r["add"].get<std::vector<std::string>>(),
                           r["remove"].get<std::vector<std::string>>()});
      }
    } else {
      return bad("unknown backend '" + backend + "'");
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

absl::Status WriteJournal(const std::string& path, const std::vector<JournalEntry>& entries) {
  const std::filesystem::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    std::filesystem::create_directories(target.parent_path(), ec);
    if (ec)
      return absl::InternalError("create " + target.parent_path().string() + ": " + ec.message());
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const std::string text = EncodeJournal(entries);
  {
    common::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return absl::ErrnoToStatus(errno, "open " + tmp);
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return absl::ErrnoToStatus(err, "write " + tmp);
      }
      done += static_cast<size_t>(n);
    }
    // The journal must survive the crash it is for.
    if (::fsync(fd.get()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      return absl::ErrnoToStatus(err, "fsync " + tmp);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, "rename " + tmp);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JournalEntry>> ReadJournal(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return absl::NotFoundError("no shaping journal " + path);
    return absl::ErrnoToStatus(errno, "open " + path);
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, "read " + path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return DecodeJournal(text);
}

absl::Status DeleteJournal(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, "unlink " + path);
  }
  return absl::OkStatus();
}

}  // namespace synq::agent
