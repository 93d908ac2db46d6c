// Proves SettingsGuard validates before writing, journals originals before the first write,
// applies and reads back, rolls back on a partial failure, and restores (explicitly, in its
// destructor, and from a crash journal). A crash journal is never overwritten by the next run's
// "originals", and one written in another network namespace is kept, not restored here. Only a
// temporary fake proc_sys_dir is ever written.
#include "agent/kernel/sysctl_settings.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace synq::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void Spit(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// A fake /proc/sys with every allowed setting, in a fresh temporary directory.
class SysctlSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/synq-sysctl-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    proc_sys_ = root_ + "/proc/sys";
    journal_ = root_ + "/state/journal/sysctl.json";
    Set("net.core.somaxconn", 4096);
    Set("net.ipv4.tcp_abort_on_overflow", 0);
    Set("net.ipv4.tcp_synack_retries", 5);
    Set("net.ipv4.tcp_syn_retries", 6);
    Set("net.ipv4.tcp_syncookies", 1);
    Set("net.ipv4.tcp_max_syn_backlog", 1024);
  }
  void TearDown() override { fs::remove_all(root_); }

  void Set(const std::string& key, int64_t value) {
    Spit(SysctlPath(proc_sys_, key), std::to_string(value) + "\n");
  }
  int64_t Get(const std::string& key) { return std::stoll(Slurp(SysctlPath(proc_sys_, key))); }

  std::string root_;
  std::string proc_sys_;
  std::string journal_;
};

TEST(AllowedSettings, ExactlyTheSevenWithRanges) {
  std::map<std::string, std::pair<int64_t, int64_t>> got;
  for (const SettingDef& def : AllowedSettings()) got[def.key] = {def.min, def.max};
  EXPECT_THAT(got, UnorderedElementsAre(Pair("net.core.somaxconn", Pair(0, INT_MAX)),
                                        Pair("net.ipv4.tcp_abort_on_overflow", Pair(0, 1)),
                                        Pair("net.ipv4.tcp_synack_retries", Pair(0, 255)),
                                        Pair("net.ipv4.tcp_syn_retries", Pair(1, 127)),
                                        Pair("net.ipv4.tcp_syncookies", Pair(0, 2)),
                                        Pair("net.ipv4.tcp_max_syn_backlog", Pair(1, INT_MAX)),
                                        Pair("net.ipv4.tcp_syn_linear_timeouts", Pair(0, 255))));
}

TEST(ValidateSetting, UnknownKeyListsAllowed) {
  absl::Status status = ValidateSetting("net.foo", 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("unknown setting 'net.foo': allowed are"));
  EXPECT_THAT(Message(status), HasSubstr("net.ipv4.tcp_syncookies"));
}

TEST(ValidateSetting, OutOfRangeNamesKeyValueAndRange) {
  absl::Status status = ValidateSetting("net.ipv4.tcp_syncookies", 3);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("net.ipv4.tcp_syncookies"));
  EXPECT_THAT(Message(status), HasSubstr("3"));
  EXPECT_THAT(Message(status), HasSubstr("[0, 2]"));
  EXPECT_FALSE(ValidateSetting("net.ipv4.tcp_syn_retries", 0).ok());
  EXPECT_FALSE(ValidateSetting("net.core.somaxconn", int64_t{INT_MAX} + 1).ok());
  EXPECT_TRUE(ValidateSetting("net.core.somaxconn", 0).ok());
  EXPECT_TRUE(ValidateSetting("net.ipv4.tcp_synack_retries", 255).ok());
}

TEST(SysctlPath, DotsBecomeSlashes) {
  EXPECT_EQ(SysctlPath("/proc/sys", "net.core.somaxconn"), "/proc/sys/net/core/somaxconn");
}

TEST_F(SysctlSettingsTest, ApplyWritesAndReadsBack) {
  SettingsGuard guard(proc_sys_, journal_);
  EXPECT_FALSE(guard.changed());
  auto applied = guard.Apply({{"net.core.somaxconn", 128}, {"net.ipv4.tcp_syncookies", 0}});
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_THAT(*applied, UnorderedElementsAre(Pair("net.core.somaxconn", 128),
                                             Pair("net.ipv4.tcp_syncookies", 0)));
  EXPECT_EQ(Slurp(SysctlPath(proc_sys_, "net.core.somaxconn")), "128\n");
  EXPECT_EQ(Get("net.ipv4.tcp_syncookies"), 0);
  EXPECT_TRUE(guard.changed());
  EXPECT_EQ(ReadSettings(proc_sys_).at("net.core.somaxconn"), 128);
}

TEST_F(SysctlSettingsTest, RestoreWritesOriginalsAndDeletesJournal) {
  SettingsGuard guard(proc_sys_, journal_);
  ASSERT_TRUE(guard.Apply({{"net.core.somaxconn", 128}, {"net.ipv4.tcp_synack_retries", 1}}).ok());
  EXPECT_TRUE(fs::exists(journal_));
  auto restored = guard.Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_THAT(*restored, UnorderedElementsAre(Pair("net.core.somaxconn", 4096),
                                              Pair("net.ipv4.tcp_synack_retries", 5)));
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
  EXPECT_EQ(Get("net.ipv4.tcp_synack_retries"), 5);
  EXPECT_FALSE(fs::exists(journal_));
  EXPECT_FALSE(guard.changed());
  // Idempotent.
  auto again = guard.Restore();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

TEST_F(SysctlSettingsTest, DestructorRestores) {
  {
    SettingsGuard guard(proc_sys_, journal_);
    ASSERT_TRUE(guard.Apply({{"net.ipv4.tcp_abort_on_overflow", 1}}).ok());
    EXPECT_EQ(Get("net.ipv4.tcp_abort_on_overflow"), 1);
  }
  EXPECT_EQ(Get("net.ipv4.tcp_abort_on_overflow"), 0);
  EXPECT_FALSE(fs::exists(journal_));
}

TEST_F(SysctlSettingsTest, JournalHoldsOriginalsAtomically) {
  SettingsGuard guard(proc_sys_, journal_);
  ASSERT_TRUE(guard.Apply({{"net.core.somaxconn", 100}}).ok());
  const std::string journal = Slurp(journal_);
  EXPECT_THAT(journal, HasSubstr("\"proc_sys_dir\": \"" + proc_sys_ + "\""));
  EXPECT_THAT(journal, HasSubstr("\"net.core.somaxconn\": 4096"));
  // The namespace the values belong to: this thread's, by inode.
  struct stat ns;
  ASSERT_EQ(::stat("/proc/thread-self/ns/net", &ns), 0);
  EXPECT_THAT(journal, HasSubstr(absl::StrCat("\"ino\": ", ns.st_ino)));
  struct stat st;
  ASSERT_EQ(::stat(journal_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  for (const auto& e : fs::directory_iterator(fs::path(journal_).parent_path())) {
    EXPECT_EQ(e.path().string(), journal_) << "temporary file left";
  }
}

// The crashed run's journal holds the real originals; the values a new run would read now are
// the crashed run's load-test values. Overwriting would make them permanent.
TEST_F(SysctlSettingsTest, CrashJournalIsNeverOverwrittenByTheNextRun) {
  {
    SettingsGuard crashed(proc_sys_, journal_);
    ASSERT_TRUE(crashed.Apply({{"net.core.somaxconn", 64}}).ok());
    fs::copy_file(journal_, root_ + "/crash.json");
  }
  fs::rename(root_ + "/crash.json", journal_);
  Set("net.core.somaxconn", 64);  // as the crashed run left it
  const std::string before = Slurp(journal_);

  SettingsGuard next(proc_sys_, journal_);
  auto applied = next.Apply({{"net.core.somaxconn", 128}});
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(applied.status()), HasSubstr(journal_));
  EXPECT_EQ(Slurp(journal_), before);
  EXPECT_EQ(Get("net.core.somaxconn"), 64) << "nothing written";
  EXPECT_FALSE(next.changed());

  auto restored = RestoreFromJournal(proc_sys_, journal_);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
}

// A journal written in another network namespace (a thread that unshared one) is not restored
// into this one and stays for an agent in the right namespace. Needs root for unshare.
TEST_F(SysctlSettingsTest, JournalOfAnotherNamespaceIsKeptNotRestored) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  absl::Status applied;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      applied = absl::ErrnoToStatus(errno, "unshare");
      return;
    }
    SettingsGuard guard(proc_sys_, journal_);
    auto a = guard.Apply({{"net.core.somaxconn", 64}});
    applied = a.status();
    fs::copy_file(journal_, root_ + "/crash.json");
  }).join();
  ASSERT_TRUE(applied.ok()) << applied;
  fs::rename(root_ + "/crash.json", journal_);
  Set("net.core.somaxconn", 77);  // this namespace's own value, never changed by that run
  const std::string before = Slurp(journal_);

  auto restored = RestoreFromJournal(proc_sys_, journal_);
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(restored.status()), HasSubstr(journal_));
  EXPECT_THAT(Message(restored.status()), HasSubstr("network namespace"));
  EXPECT_EQ(Get("net.core.somaxconn"), 77);
  EXPECT_EQ(Slurp(journal_), before);
}

TEST_F(SysctlSettingsTest, JournalIsWrittenBeforeTheFirstWrite) {
  // The first (and only) write fails: the journal must already exist, holding the original.
  // /proc/self/oom_score reads as a number but has no write handler, so even root cannot write.
  const std::string target = SysctlPath(proc_sys_, "net.core.somaxconn");
  fs::remove(target);
  fs::create_symlink("/proc/self/oom_score", target);
  SettingsGuard guard(proc_sys_, journal_);
  auto applied = guard.Apply({{"net.core.somaxconn", 100}});
  ASSERT_FALSE(applied.ok());
  EXPECT_THAT(Message(applied.status()), HasSubstr("net.core.somaxconn"));
  EXPECT_THAT(Slurp(journal_), HasSubstr("\"net.core.somaxconn\""));
  // Let the destructor restore into a plain file again.
  fs::remove(target);
  Set("net.core.somaxconn", 4096);
}

TEST_F(SysctlSettingsTest, UnwritableJournalMeansNothingWritten) {
  // The journal's parent is a file: journaling fails, so no value may be written.
  Spit(root_ + "/blocker", "x");
  SettingsGuard guard(proc_sys_, root_ + "/blocker/sysctl.json");
  auto applied = guard.Apply({{"net.core.somaxconn", 100}});
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
  EXPECT_FALSE(guard.changed());
}

TEST_F(SysctlSettingsTest, CrashJournalIsRestoredAndDeleted) {
  const std::string crash_journal = root_ + "/crash.json";
  {
    SettingsGuard guard(proc_sys_, journal_);
    ASSERT_TRUE(guard.Apply({{"net.core.somaxconn", 64}, {"net.ipv4.tcp_syn_retries", 2}}).ok());
    // What a crash leaves behind: the journal as it was while the settings were applied.
    fs::copy_file(journal_, crash_journal);
    // The guard's destructor restores here; set the values again as the crashed agent left them.
  }
  Set("net.core.somaxconn", 64);
  Set("net.ipv4.tcp_syn_retries", 2);

  auto restored = RestoreFromJournal(proc_sys_, crash_journal);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_THAT(*restored, UnorderedElementsAre(Pair("net.core.somaxconn", 4096),
                                              Pair("net.ipv4.tcp_syn_retries", 6)));
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
  EXPECT_EQ(Get("net.ipv4.tcp_syn_retries"), 6);
  EXPECT_FALSE(fs::exists(crash_journal));
}

TEST_F(SysctlSettingsTest, NoJournalIsOkAndEmpty) {
  auto restored = RestoreFromJournal(proc_sys_, root_ + "/none.json");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(restored->empty());
}

TEST_F(SysctlSettingsTest, CorruptJournalIsAnErrorNamingThePathAndIsKept) {
  for (const std::string& text :
       {std::string("{not json"), std::string("[1,2]"), std::string("{\"settings\": 3}"),
        std::string("{\"settings\": {\"net.foo\": 1}}"),
        std::string("{\"settings\": {\"net.core.somaxconn\": \"x\"}}"),
        // No namespace: an older agent's, which cannot be tied to this namespace.
        std::string("{\"settings\": {\"net.core.somaxconn\": 1}}")}) {
    const std::string path = root_ + "/corrupt.json";
    Spit(path, text);
    auto restored = RestoreFromJournal(proc_sys_, path);
    ASSERT_FALSE(restored.ok()) << text;
    EXPECT_THAT(Message(restored.status()), HasSubstr(path)) << text;
    EXPECT_TRUE(fs::exists(path)) << text;
  }
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
}

TEST_F(SysctlSettingsTest, InvalidKeyOrRangeWritesNothing) {
  SettingsGuard guard(proc_sys_, journal_);
  auto unknown = guard.Apply({{"net.core.somaxconn", 100}, {"net.foo", 1}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(unknown.status()), HasSubstr("net.foo"));
  auto range = guard.Apply({{"net.core.somaxconn", 100}, {"net.ipv4.tcp_syncookies", 7}});
  ASSERT_FALSE(range.ok());
  EXPECT_EQ(range.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
  EXPECT_FALSE(fs::exists(journal_));
  EXPECT_FALSE(guard.changed());
}

TEST_F(SysctlSettingsTest, UnreadableOriginalWritesNothing) {
  // A setting whose path is a directory cannot be read, so it cannot be journaled or applied.
  fs::remove(SysctlPath(proc_sys_, "net.ipv4.tcp_syncookies"));
  fs::create_directories(SysctlPath(proc_sys_, "net.ipv4.tcp_syncookies"));
  SettingsGuard guard(proc_sys_, journal_);
  auto applied = guard.Apply({{"net.core.somaxconn", 100}, {"net.ipv4.tcp_syncookies", 2}});
  ASSERT_FALSE(applied.ok());
  EXPECT_THAT(Message(applied.status()), HasSubstr("net.ipv4.tcp_syncookies"));
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
  EXPECT_FALSE(fs::exists(journal_));
}

TEST_F(SysctlSettingsTest, PartialWriteFailureRollsBack) {
  // tcp_syncookies points at a readable file no one can write, even root: /proc/self/oom_score
  // has no write handler. Keys are written in name order, so somaxconn and tcp_abort_on_overflow
  // are written first and must be rolled back.
  const std::string target = SysctlPath(proc_sys_, "net.ipv4.tcp_syncookies");
  fs::remove(target);
  fs::create_symlink("/proc/self/oom_score", target);
  SettingsGuard guard(proc_sys_, journal_);
  auto applied = guard.Apply({{"net.core.somaxconn", 100},
                              {"net.ipv4.tcp_abort_on_overflow", 1},
                              {"net.ipv4.tcp_syncookies", 2}});
  ASSERT_FALSE(applied.ok());
  EXPECT_THAT(Message(applied.status()), HasSubstr("net.ipv4.tcp_syncookies"));
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
  EXPECT_EQ(Get("net.ipv4.tcp_abort_on_overflow"), 0);
  // The originals stay journaled until the guard restores.
  EXPECT_TRUE(fs::exists(journal_));
  fs::remove(target);
  Set("net.ipv4.tcp_syncookies", 1);
  ASSERT_TRUE(guard.Restore().ok());
  EXPECT_FALSE(fs::exists(journal_));
}

TEST_F(SysctlSettingsTest, SecondApplyKeepsTheFirstOriginal) {
  SettingsGuard guard(proc_sys_, journal_);
  ASSERT_TRUE(guard.Apply({{"net.core.somaxconn", 100}}).ok());
  ASSERT_TRUE(guard.Apply({{"net.core.somaxconn", 200}, {"net.ipv4.tcp_syn_retries", 3}}).ok());
  EXPECT_EQ(Get("net.core.somaxconn"), 200);
  const std::string journal = Slurp(journal_);
  EXPECT_THAT(journal, HasSubstr("\"net.core.somaxconn\": 4096"));
  EXPECT_THAT(journal, HasSubstr("\"net.ipv4.tcp_syn_retries\": 6"));
  EXPECT_THAT(journal, ::testing::Not(HasSubstr("\"net.core.somaxconn\": 100")));
  auto restored = guard.Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(Get("net.core.somaxconn"), 4096);
  EXPECT_EQ(Get("net.ipv4.tcp_syn_retries"), 6);
}

TEST_F(SysctlSettingsTest, ReadSettingsSkipsMissingFiles) {
  fs::remove(SysctlPath(proc_sys_, "net.ipv4.tcp_syncookies"));
  auto settings = ReadSettings(proc_sys_);
  EXPECT_EQ(settings.size(), 5u);
  EXPECT_FALSE(settings.contains("net.ipv4.tcp_syncookies"));
  EXPECT_EQ(settings.at("net.ipv4.tcp_max_syn_backlog"), 1024);
  EXPECT_TRUE(ReadSettings(root_ + "/empty").empty());
}

}  // namespace
}  // namespace synq::agent
