// LinuxFileSystem::ReadFileInto: a secret goes from the file straight into the
// caller's buffer, and a file too large for it leaves nothing there.
#include "platform/linux/file_system_linux.h"
#include "platform/linux/volume_linux.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "agent/common/crypto.h"
#include "agent/state/command_ledger.h"
#include "gtest/gtest.h"
#include "tests/common/command_factory.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::IsOk;
using testing::StatusIs;

class ReadFileIntoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeward-fs-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    unlink((dir_ + "/f").c_str());
    rmdir(dir_.c_str());
  }
  std::string Write(const std::string& data) {
    std::ofstream(dir_ + "/f", std::ios::binary) << data;
    return dir_ + "/f";
  }
  LinuxFileSystem fs_;
  std::string dir_;
};

TEST_F(ReadFileIntoTest, ReadsTheWholeFileUpToCapacity) {
  char buf[16];
  auto n = fs_.ReadFileInto(Write("secret"), buf, sizeof(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(std::string(buf, *n), "secret");
  n = fs_.ReadFileInto(Write(std::string(16, 'k')), buf, sizeof(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 16u);
  n = fs_.ReadFileInto(Write(""), buf, sizeof(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 0u);
}

TEST_F(ReadFileIntoTest, LargerThanCapacityIsOutOfRangeAndLeavesNothing) {
  char buf[16];
  EXPECT_THAT(fs_.ReadFileInto(Write(std::string(17, 'k')), buf, sizeof(buf)),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(std::string(buf, sizeof(buf)), std::string(sizeof(buf), '\0'));
}

TEST_F(ReadFileIntoTest, MissingFileIsNotFound) {
  char buf[4];
  EXPECT_THAT(fs_.ReadFileInto(dir_ + "/absent", buf, sizeof(buf)),
              StatusIs(absl::StatusCode::kNotFound));
}


// A symlink planted at the temporary name (e.g. key.pem.tmp -> /etc/shadow)
// is not written through: the write makes a new file and the link's target
// keeps its bytes. Before the fix, O_TRUNC emptied the target.
TEST_F(ReadFileIntoTest, AtomicWriteNeverFollowsASymlinkAtItsTemporaryName) {
  const std::string victim = dir_ + "/victim";
  std::ofstream(victim) << "precious";
  ASSERT_EQ(symlink(victim.c_str(), (dir_ + "/key.pem.tmp").c_str()), 0);
  ASSERT_THAT(fs_.WriteFileAtomically(dir_ + "/key.pem", "new key", 0600), IsOk());
  EXPECT_EQ(fs_.ReadFile(victim).value(), "precious");
  EXPECT_EQ(fs_.ReadFile(dir_ + "/key.pem").value(), "new key");
  EXPECT_EQ(fs_.ReadSymlink(dir_ + "/key.pem.tmp").status().code(), absl::StatusCode::kNotFound);
  unlink(victim.c_str());
  unlink((dir_ + "/key.pem").c_str());
}

}  // namespace
}  // namespace nodeward::platform

namespace nodeward {
namespace {

// Issue "Hardening I" point 4 on real files: compact past journal.1, lose
// the snapshot, reopen: the ledger refuses instead of starting at 0.
TEST(LedgerOnRealFilesTest, LostSnapshotAfterCompactionRefuses) {
  char tmpl[] = "/tmp/nodeward-ledger-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  platform::LinuxFileSystem fs;
  testing::CommandFactory f;
  const absl::Time now = absl::Now();
  LedgerOptions o;
  o.dir = dir;
  o.compact_after_records = 3;
  {
    auto ledger = CommandLedger::Open(&fs, o, now);
    ASSERT_THAT(ledger->health(), testing::IsOk());
    for (uint64_t seq = 1; seq <= 8; ++seq) {
      VerifiedCommand v;
      v.command = f.Ping(seq, now);
      v.command_type = "ping";
      v.payload_sha256 = Sha256(v.command.SerializeAsString());
      ASSERT_THAT(ledger->Admit(v, now), testing::IsOk());
      nodeward::v1::Outcome out;
      out.set_result("r");
      ASSERT_THAT(ledger->RecordOutcome(v.command.command_id(), out), testing::IsOk());
    }
  }
  ASSERT_NE(access((dir + "/journal.1").c_str(), F_OK), 0);
  ASSERT_EQ(unlink((dir + "/snapshot").c_str()), 0);
  auto reopened = CommandLedger::Open(&fs, o, now);
  EXPECT_THAT(reopened->health(), testing::StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_NE(access((dir + "/snapshot").c_str(), F_OK), 0);
  (void)!system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace nodeward

namespace nodeward::platform {
namespace {

// Issue "Hardening II" point 10: a serial several disks share (NVMe
// namespaces) is refused instead of silently taking the last one.
TEST(PickDiskBySerialTest, RefusesAmbiguity) {
  EXPECT_EQ(PickDiskBySerial({{"vda", "os"}, {"vdb", "nw-1"}}, "nw-1").value(), "vdb");
  EXPECT_THAT(PickDiskBySerial({{"vda", "os"}}, "nw-1"), StatusIs(absl::StatusCode::kNotFound));
  auto two = PickDiskBySerial({{"nvme0n2", "S1"}, {"nvme0n1", "S1"}, {"vda", "os"}}, "S1");
  EXPECT_THAT(two, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(two.status().message().find("nvme0n1, nvme0n2"), std::string::npos) << two.status();
}

}  // namespace
}  // namespace nodeward::platform
