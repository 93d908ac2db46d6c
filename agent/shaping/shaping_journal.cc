#include "agent/shaping/shaping_journal.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace synq::agent {
namespace {

using nlohmann::json;
// 1: rules as iptables argv (executed at restore: refused since 2). 2: rules as data.
constexpr int kJournalVersion = 2;

const char* FamilyName(IpFamily f) { return f == IpFamily::kIpv4 ? "ipv4" : "ipv6"; }

json RuleToJson(const IptablesRule& r) {
  return {{"family", FamilyName(r.family)},
          {"table", r.table},
          {"chain", r.chain},
          {"out_interface", r.out_interface},
          {"destination", r.destination},
          {"queue_num", r.queue_num},
          {"queue_bypass", r.queue_bypass}};
}

absl::StatusOr<IptablesRule> RuleFromJson(const json& j) {
  auto bad = [](const std::string& why) { return absl::DataLossError("nfqueue rule: " + why); };
  if (!j.is_object()) return bad("not an object");
  for (const char* key : {"family", "table", "chain", "out_interface", "destination"}) {
    if (!j.contains(key) || !j[key].is_string()) return bad(absl::StrCat("\"", key, "\" missing"));
  }
  if (!j.contains("queue_num") || !j["queue_num"].is_number_unsigned() ||
      j["queue_num"].get<uint64_t>() > 65535) {
    return bad("\"queue_num\" must be in [0, 65535]");
  }
  if (!j.contains("queue_bypass") || !j["queue_bypass"].is_boolean()) {
    return bad("\"queue_bypass\" missing");
  }
  IptablesRule r;
  const std::string family = j["family"].get<std::string>();
  if (family == "ipv4") {
    r.family = IpFamily::kIpv4;
  } else if (family == "ipv6") {
    r.family = IpFamily::kIpv6;
  } else {
    return bad("\"family\" must be ipv4 or ipv6, not '" + family + "'");
  }
  r.table = j["table"].get<std::string>();
  r.chain = j["chain"].get<std::string>();
  r.out_interface = j["out_interface"].get<std::string>();
  r.destination = j["destination"].get<std::string>();
  r.queue_num = static_cast<uint16_t>(j["queue_num"].get<uint64_t>());
  r.queue_bypass = j["queue_bypass"].get<bool>();
  if (absl::Status s = ValidateIptablesRule(r); !s.ok()) return bad(std::string(s.message()));
  return r;
}

}  // namespace

std::string EncodeJournal(const ShapingJournal& journal) {
  json doc = {{"version", kJournalVersion},
              {"pid", ::getpid()},
              {"netns", NetnsToJson(journal.netns)},
              {"entries", json::array()}};
  for (const auto& e : journal.entries) {
    json entry;
    if (e.backend == ShapingBackend::kNetem) {
      entry = {
          {"backend", "netem"}, {"ifindex", e.ifindex}, {"ifname", e.ifname}, {"handle", e.handle}};
    } else {
      json rules = json::array();
      for (const auto& r : e.rules) rules.push_back(RuleToJson(r));
      entry = {{"backend", "nfqueue"}, {"queue_num", e.queue_num}, {"rules", rules}};
    }
    doc["entries"].push_back(entry);
  }
  return doc.dump(2) + "\n";
}

absl::StatusOr<ShapingJournal> DecodeJournal(const std::string& text) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [](const std::string& why) { return absl::DataLossError(why); };
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  if (!doc.contains("version") || !doc["version"].is_number_integer()) return bad("no version");
  if (doc["version"] == 1) {
    return bad(
        "version 1 holds iptables commands, which this agent no longer runs; remove the rules it "
        "lists by hand (iptables -t mangle -D ...), then delete the file");
  }
  if (doc["version"] != kJournalVersion) {
    return bad(absl::StrCat("unknown version ", doc["version"].dump(), " (this agent writes ",
                            kJournalVersion, ")"));
  }
  ShapingJournal journal;
  if (!doc.contains("netns")) return bad("no \"netns\"");
  absl::StatusOr<NetnsIdentity> netns = NetnsFromJson(doc["netns"]);
  if (!netns.ok()) return bad(std::string(netns.status().message()));
  journal.netns = *netns;
  if (!doc.contains("entries") || !doc["entries"].is_array()) return bad("no entries array");
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
        ASSIGN_OR_RETURN(IptablesRule rule, RuleFromJson(r));
        e.rules.push_back(std::move(rule));
      }
    } else {
      return bad("unknown backend '" + backend + "'");
    }
    journal.entries.push_back(std::move(e));
  }
  return journal;
}

absl::Status WriteJournal(const std::string& path, const ShapingJournal& journal) {
  return common::WriteFileAtomically(path, EncodeJournal(journal));
}

absl::StatusOr<ShapingJournal> ReadJournal(const std::string& path) {
  std::string text;
  absl::Status read = common::ReadWholeFile(path, &text);
  if (absl::IsNotFound(read)) return absl::NotFoundError("no shaping journal " + path);
  RETURN_IF_ERROR(read);
  absl::StatusOr<ShapingJournal> journal = DecodeJournal(text);
  if (!journal.ok()) {
    return absl::DataLossError(
        absl::StrCat("shaping journal ", path, " refused (kept): ", journal.status().message()));
  }
  return journal;
}

absl::Status DeleteJournal(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, "unlink " + path);
  }
  return absl::OkStatus();
}

}  // namespace synq::agent
