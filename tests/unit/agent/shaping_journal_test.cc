// Proves the shaping journal round-trips, is written atomically with its directories created,
// rejects garbage, and that the NFQUEUE rules it records are the exact iptables argv.
#include "agent/shaping/shaping_journal.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/shaping/nfqueue_rule.h"
#include "agent/shaping/shaper.h"
#include "gtest/gtest.h"

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

TEST(NfqueueRules, Ipv4DestinationIsOneIptablesRule) {
  const auto rules = NfqueueRules("veth0", "198.18.0.2/32", 4242);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].add,
            (Argv{"iptables", "-w", "-t", "mangle", "-A", "POSTROUTING", "-o", "veth0", "-d",
                  "198.18.0.2/32", "-j", "NFQUEUE", "--queue-num", "4242"}));
  EXPECT_EQ(rules[0].remove,
            (Argv{"iptables", "-w", "-t", "mangle", "-D", "POSTROUTING", "-o", "veth0", "-d",
                  "198.18.0.2/32", "-j", "NFQUEUE", "--queue-num", "4242"}));
}

TEST(NfqueueRules, Ipv6DestinationIsOneIp6tablesRule) {
  const auto rules = NfqueueRules("eth1", "2001:db8::/64", 7);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].add.front(), "ip6tables");
  EXPECT_EQ(rules[0].add[9], "2001:db8::/64");
}

TEST(NfqueueRules, NoDestinationCoversBothFamilies) {
  const auto rules = NfqueueRules("eth1", "", 7);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].add, (Argv{"iptables", "-w", "-t", "mangle", "-A", "POSTROUTING", "-o", "eth1",
                                "-j", "NFQUEUE", "--queue-num", "7"}));
  EXPECT_EQ(rules[1].add.front(), "ip6tables");
}

std::vector<JournalEntry> SampleEntries() {
  JournalEntry netem;
  netem.backend = ShapingBackend::kNetem;
  netem.ifindex = 7;
  netem.ifname = "eth0";
  netem.handle = 0x51710000;
  JournalEntry nfq;
  nfq.backend = ShapingBackend::kNfqueue;
  nfq.queue_num = 5123;
  nfq.rules = NfqueueRules("eth0", "", 5123);
  return {netem, nfq};
}

TEST(ShapingJournal, EncodeDecodeRoundTrips) {
  const auto entries = SampleEntries();
  auto decoded = DecodeJournal(EncodeJournal(entries));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, entries);
}

TEST(ShapingJournal, WriteCreatesParentsAndLeavesNoTempFile) {
  TempDir dir;
  const std::string path = dir.path() + "/a/b/shaping.json";
  ASSERT_TRUE(WriteJournal(path, SampleEntries()).ok());
  auto read = ReadJournal(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, SampleEntries());
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
  EXPECT_EQ(DecodeJournal(R"({"version":1,"entries":[{"backend":"tc"}]})").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(
      DecodeJournal(R"({"version":1,"entries":[{"backend":"nfqueue","queue_num":1,"rules":[{}]}]})")
          .status()
          .code(),
      absl::StatusCode::kDataLoss);
}

TEST(RemoveShapingFromJournal, NoJournalIsOk) {
  TempDir dir;
  EXPECT_TRUE(RemoveShapingFromJournal(dir.path() + "/none.json").ok());
}

TEST(RemoveShapingFromJournal, CorruptJournalIsAnErrorAndIsKept) {
  TempDir dir;
  const std::string path = dir.path() + "/j.json";
  std::ofstream(path) << "garbage";
  EXPECT_EQ(RemoveShapingFromJournal(path).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace synq::agent
