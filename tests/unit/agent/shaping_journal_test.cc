// Proves the shaping journal holds data, not commands: it round-trips rules as fields, the argv
// built from them carries --queue-bypass, it is written atomically (mode 0600, no temp file), and
// a journal that does not parse, holds version-1 argv, smuggles an option through a field, or was
// written in another network namespace is refused with its path and kept, never executed.
#include "agent/shaping/shaping_journal.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "agent/shaping/nfqueue_rule.h"
#include "agent/shaping/shaper.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace synq::agent {
namespace {

using Argv = std::vector<std::string>;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "synq-journal-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(NfqueueRules, Ipv4DestinationIsOneIptablesRuleWithQueueBypass) {
  const auto rules = NfqueueRules("veth0", "198.18.0.2/32", 4242);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(IptablesArgv(rules[0], true),
            (Argv{"iptables", "-w", "-t", "mangle", "-A", "POSTROUTING", "-o", "veth0", "-d",
                  "198.18.0.2/32", "-j", "NFQUEUE", "--queue-num", "4242", "--queue-bypass"}));
  EXPECT_EQ(IptablesArgv(rules[0], false),
            (Argv{"iptables", "-w", "-t", "mangle", "-D", "POSTROUTING", "-o", "veth0", "-d",
                  "198.18.0.2/32", "-j", "NFQUEUE", "--queue-num", "4242", "--queue-bypass"}));
}

TEST(NfqueueRules, Ipv6DestinationIsOneIp6tablesRule) {
  const auto rules = NfqueueRules("eth1", "2001:db8::/64", 7);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(IptablesArgv(rules[0], true).front(), "ip6tables");
  EXPECT_EQ(IptablesArgv(rules[0], true)[9], "2001:db8::/64");
}

TEST(NfqueueRules, NoDestinationCoversBothFamilies) {
  const auto rules = NfqueueRules("eth1", "", 7);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(IptablesArgv(rules[0], true),
            (Argv{"iptables", "-w", "-t", "mangle", "-A", "POSTROUTING", "-o", "eth1", "-j",
                  "NFQUEUE", "--queue-num", "7", "--queue-bypass"}));
  EXPECT_EQ(IptablesArgv(rules[1], true).front(), "ip6tables");
}

TEST(NfqueueRules, ValidationRefusesFieldsThatWouldBecomeOptions) {
  IptablesRule rule = NfqueueRules("eth0", "", 1)[0];
  EXPECT_TRUE(ValidateIptablesRule(rule).ok());
  IptablesRule bad = rule;
  bad.out_interface = "-j ACCEPT";
  EXPECT_NE(ValidateIptablesRule(bad).message().find("out_interface"), std::string::npos);
  bad = rule;
  bad.destination = "--help";
  EXPECT_NE(ValidateIptablesRule(bad).message().find("destination"), std::string::npos);
  bad = rule;
  bad.table = "filter";
  EXPECT_NE(ValidateIptablesRule(bad).message().find("table"), std::string::npos);
  bad = rule;
  bad.chain = "INPUT";
  EXPECT_NE(ValidateIptablesRule(bad).message().find("chain"), std::string::npos);
}

ShapingJournal SampleJournal() {
  JournalEntry netem;
  netem.backend = ShapingBackend::kNetem;
  netem.ifindex = 7;
  netem.ifname = "eth0";
  netem.handle = 0x51710000;
  JournalEntry nfq;
  nfq.backend = ShapingBackend::kNfqueue;
  nfq.queue_num = 5123;
  nfq.rules = NfqueueRules("eth0", "", 5123);
  return {*CurrentNetns(), {netem, nfq}};
}

TEST(ShapingJournal, EncodeDecodeRoundTripsAndHoldsNoArgv) {
  const ShapingJournal journal = SampleJournal();
  const std::string text = EncodeJournal(journal);
  EXPECT_EQ(text.find("iptables"), std::string::npos) << text;
  EXPECT_EQ(text.find("-D"), std::string::npos) << text;
  auto decoded = DecodeJournal(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->entries, journal.entries);
  EXPECT_EQ(decoded->netns, journal.netns);
}

TEST(ShapingJournal, WriteIsAtomicMode0600AndCreatesParents) {
  TempDir dir;
  const std::string path = dir.path() + "/a/b/shaping.json";
  ASSERT_TRUE(WriteJournal(path, SampleJournal()).ok());
  auto read = ReadJournal(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->entries, SampleJournal().entries);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() + "/a/b")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
  ASSERT_TRUE(DeleteJournal(path).ok());
  EXPECT_EQ(ReadJournal(path).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(DeleteJournal(path).ok()) << "deleting a missing journal is fine";
}

TEST(ShapingJournal, GarbageIsDataLossNotACrash) {
  EXPECT_EQ(DecodeJournal("{not json").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeJournal("[]").status().code(), absl::StatusCode::kDataLoss);
  const std::string netns = R"("netns":{"dev":1,"ino":2})";
  EXPECT_EQ(DecodeJournal(R"({"version":2,)" + netns + R"(,"entries":[{"backend":"tc"}]})")
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeJournal(R"({"version":2,)" + netns +
                          R"(,"entries":[{"backend":"nfqueue","queue_num":1,"rules":[{}]}]})")
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeJournal(R"({"version":2,"entries":[]})").status().code(),
            absl::StatusCode::kDataLoss)
      << "no namespace recorded";
}

TEST(ShapingJournal, RuleSmugglingAnOptionIsRefused) {
  ShapingJournal journal = SampleJournal();
  nlohmann::json doc = nlohmann::json::parse(EncodeJournal(journal));
  doc["entries"][1]["rules"][0]["out_interface"] = "eth0 -j ACCEPT";
  auto decoded = DecodeJournal(doc.dump());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(decoded.status().message().find("out_interface"), std::string::npos)
      << decoded.status();
}

TEST(RemoveShapingFromJournal, NoJournalIsOk) {
  TempDir dir;
  EXPECT_TRUE(RemoveShapingFromJournal(dir.path() + "/none.json").ok());
}

TEST(RemoveShapingFromJournal, CorruptJournalIsRefusedWithItsPathAndKept) {
  TempDir dir;
  const std::string path = dir.path() + "/j.json";
  std::ofstream(path) << "garbage";
  const absl::Status s = RemoveShapingFromJournal(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_TRUE(std::filesystem::exists(path));
}

// A version-1 journal held argv that the agent ran as root: whoever could write the state dir
// got a root command. The command here would create a marker file if it were ever run.
TEST(RemoveShapingFromJournal, Version1ArgvJournalIsRefusedNotExecuted) {
  TempDir dir;
  const std::string path = dir.path() + "/j.json";
  const std::string marker = dir.path() + "/ran";
  nlohmann::json v1 = {
      {"version", 1},
      {"pid", 1},
      {"entries",
       {{{"backend", "nfqueue"},
         {"queue_num", 1},
         {"rules", {{{"add", {"touch", marker}}, {"remove", {"touch", marker}}}}}}}}};
  std::ofstream(path) << v1.dump();
  const absl::Status s = RemoveShapingFromJournal(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_NE(s.message().find("by hand"), std::string::npos) << s;
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the journal's command was run";
  EXPECT_TRUE(std::filesystem::exists(path));
}

// The journal names a namespace other than the agent's: nothing is removed here, the journal
// stays for an agent in the right namespace. Uses a namespace of our own (needs root).
TEST(RemoveShapingFromJournal, OtherNamespaceJournalIsKept) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  TempDir dir;
  const std::string path = dir.path() + "/j.json";
  ShapingJournal journal = SampleJournal();
  journal.entries.erase(journal.entries.begin());  // nfqueue only: nothing to find by ifindex
  // Written by a thread in a fresh namespace: the journal records that namespace.
  absl::Status written;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      written = absl::ErrnoToStatus(errno, "unshare");
      return;
    }
    journal.netns = *CurrentNetns();
    written = WriteJournal(path, journal);
  }).join();
  ASSERT_TRUE(written.ok()) << written;
  const std::string before = [&] {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  const absl::Status s = RemoveShapingFromJournal(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_NE(s.message().find("network namespace"), std::string::npos) << s;
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), before) << "journal changed";
}

}  // namespace
}  // namespace synq::agent
