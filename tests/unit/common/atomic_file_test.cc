// Proves the one atomic writer gives the file exactly the mode asked for (whatever the umask),
// replaces the content whole, leaves no temporary file behind on success or failure, and names
// the path and the errno reason when it cannot write.
#include "common/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace synq::common {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "synq-atomic-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, ec);
    fs::remove_all(dir_, ec);
  }
  std::vector<std::string> Entries(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
    return names;
  }
  std::string dir_;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(AtomicFileTest, WritesContentWithMode0600WhateverTheUmask) {
  const mode_t old = ::umask(0);  // a umask of 0 would leave 0666 from a plain open()
  const std::string path = dir_ + "/journal.json";
  const absl::Status s = WriteFileAtomically(path, "first\n");
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Slurp(path), "first\n");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  EXPECT_EQ(Slurp(path), "second");
  EXPECT_EQ(Entries(dir_), std::vector<std::string>{"journal.json"});
}

TEST_F(AtomicFileTest, OtherModeAndMissingParentsAreCreated) {
  const std::string path = dir_ + "/a/b/port";
  ASSERT_TRUE(WriteFileAtomically(path, "unix:/x\n", 0644).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

// rename() onto a non-empty directory fails after the temporary file was written: the
// temporary must be gone and the error must name the path.
TEST_F(AtomicFileTest, FailedRenameLeavesNoTemporaryAndNamesThePath) {
  const std::string path = dir_ + "/target";
  fs::create_directories(path + "/inside");
  const absl::Status s = WriteFileAtomically(path, "x");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_NE(s.message().find("rename"), std::string::npos) << s;
  EXPECT_EQ(Entries(dir_), std::vector<std::string>{"target"});
}

// A parent that is a file (ENOTDIR) stands for a state dir that cannot be written (root ignores
// directory permissions, so a read-only mode would not fail as root).
TEST_F(AtomicFileTest, UnwritableDirectoryIsAnErrorNamingThePath) {
  std::ofstream(dir_ + "/file") << "x";
  const std::string path = dir_ + "/file/journal.json";
  const absl::Status s = WriteFileAtomically(path, "x");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_EQ(Entries(dir_), std::vector<std::string>{"file"});
}

TEST_F(AtomicFileTest, ReadOnlyDirectoryIsAnErrorWithErrnoWhenNotRoot) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  const std::string path = dir_ + "/journal.json";
  const absl::Status s = WriteFileAtomically(path, "x");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
}

TEST_F(AtomicFileTest, ReadWholeFileReadsAndReportsMissingAsNotFound) {
  std::string text;
  EXPECT_EQ(ReadWholeFile(dir_ + "/none", &text).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/f", "abc").ok());
  ASSERT_TRUE(ReadWholeFile(dir_ + "/f", &text).ok());
  EXPECT_EQ(text, "abc");
}

}  // namespace
}  // namespace synq::common
