// The audit chain detects an edit, a truncation in the middle, a reordering
// and a deleted record; a reopened log continues the chain.
#include "agent/state/audit_log.h"

#include <algorithm>

#include "agent/common/proto_util.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_file_system.h"

namespace nodeward {
namespace {

using testing::IsOk;
using testing::StatusIs;

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = AuditLog::Open(&fs_, kPath);
    ASSERT_THAT(log, IsOk());
    for (int i = 0; i < 5; ++i) {
      nodeward::v1::AuditRecord r;
      r.set_command_id(absl::StrCat("cmd-", i));
      r.set_sequence(i + 1);
      r.set_decision(i % 2 ? "rejected" : "applied");
      ASSERT_THAT((*log)->Append(r), IsOk());
    }
  }
  std::vector<std::string> Lines() {
    std::string c = fs_.Content(kPath);
    c.pop_back();
    return absl::StrSplit(c, '\n');
  }
  static std::string Join(const std::vector<std::string>& lines) {
    return absl::StrJoin(lines, "\n") + "\n";
  }

  static constexpr char kPath[] = "/state/audit.jsonl";
  platform::FakeFileSystem fs_;
};

TEST_F(AuditLogTest, IntactChainVerifies) {
  auto v = VerifyAuditChain(fs_.Content(kPath));
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->records, 5u);
}

TEST_F(AuditLogTest, EditIsDetected) {
  auto lines = Lines();
  auto pos = lines[2].find("rejected");
  ASSERT_EQ(pos, std::string::npos);  // line 2 is "applied"
  pos = lines[2].find("applied");
  lines[2].replace(pos, 7, "skipped");
  EXPECT_THAT(VerifyAuditChain(Join(lines)), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(AuditLogTest, DeletedRecordIsDetected) {
  auto lines = Lines();
  lines.erase(lines.begin() + 1);
  EXPECT_THAT(VerifyAuditChain(Join(lines)), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(AuditLogTest, ReorderingIsDetected) {
  auto lines = Lines();
  std::swap(lines[1], lines[3]);
  EXPECT_THAT(VerifyAuditChain(Join(lines)), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(AuditLogTest, TruncationInTheMiddleIsDetected) {
  auto lines = Lines();
  lines[2] = lines[2].substr(0, lines[2].size() / 2);
  EXPECT_THAT(VerifyAuditChain(Join(lines)), StatusIs(absl::StatusCode::kDataLoss));
  std::string c = fs_.Content(kPath);
  EXPECT_THAT(VerifyAuditChain(c.substr(0, c.size() - 7)), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(AuditLogTest, ReopenContinuesChain) {
  auto log = AuditLog::Open(&fs_, kPath);
  ASSERT_THAT(log, IsOk());
  nodeward::v1::AuditRecord r;
  r.set_event("startup");
  ASSERT_THAT((*log)->Append(r), IsOk());
  auto v = VerifyAuditChain(fs_.Content(kPath));
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->records, 6u);
}

TEST_F(AuditLogTest, BrokenChainIsNotExtended) {
  auto lines = Lines();
  lines.erase(lines.begin());
  fs_.SetContent(kPath, Join(lines));
  EXPECT_THAT(AuditLog::Open(&fs_, kPath), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(AuditLogTest, FailedAppendLeavesChainVerifiable) {
  auto log = AuditLog::Open(&fs_, kPath);
  ASSERT_THAT(log, IsOk());
  fs_.FailNext(absl::StatusCode::kResourceExhausted);
  nodeward::v1::AuditRecord r;
  r.set_event("x");
  EXPECT_FALSE((*log)->Append(r).ok());
  ASSERT_THAT((*log)->Append(r), IsOk());
  EXPECT_THAT(VerifyAuditChain(fs_.Content(kPath)), IsOk());
}

}  // namespace
}  // namespace nodeward

namespace nodeward {
namespace {

// Issue "Hardening I" point 5: a torn or zero-filled last line (a crash in
// the middle of a write; ext4 extending the file with zeros) is cut like the
// journal's tail and an audit record says what was cut; on fcf3c42 it
// disabled auditing for good. Damage anywhere else still refuses the chain.
TEST_F(AuditLogTest, TornOrZeroFilledTailIsCutAndRecorded) {
  const std::string good = fs_.Content(kPath);
  for (const std::string& tail :
       {std::string("{\"index\":\"5\",\"ti"), std::string(4096, '\0'),
        std::string("\0\0\0\0\n", 5), std::string("{\"index\":\"5\"} garbage\n")}) {
    fs_.SetContent(kPath, good + tail);
    auto log = AuditLog::Open(&fs_, kPath);
    ASSERT_THAT(log, IsOk()) << tail.size();
    EXPECT_NE((*log)->cut_tail().find(absl::StrCat(tail.size(), " bytes")), std::string::npos)
        << (*log)->cut_tail();
    const std::string now = fs_.Content(kPath);
    auto v = VerifyAuditChain(now);
    ASSERT_THAT(v, IsOk());
    EXPECT_EQ(v->records, 6u);  // the five, and the record of the cut
    EXPECT_NE(now.find("audit_tail_cut"), std::string::npos);
    nodeward::v1::AuditRecord r;
    r.set_event("next");
    ASSERT_THAT((*log)->Append(r), IsOk());
    EXPECT_THAT(VerifyAuditChain(fs_.Content(kPath)), IsOk());
  }
  // A bad line that is not the last one is not a torn tail.
  auto lines = Lines();
  lines[1] = "{\"index\":\"1\"} edited";
  fs_.SetContent(kPath, Join(lines));
  EXPECT_THAT(AuditLog::Open(&fs_, kPath), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace nodeward

namespace nodeward {
namespace {

// Write-through: a line is durable when Append returns (a crash right
// after loses nothing); after a failed fdatasync nothing more is vouched for
// until a restart re-reads the file.
TEST_F(AuditLogTest, LinesAreDurableAndAFailedSyncFailsClosed) {
  auto log = AuditLog::Open(&fs_, kPath);
  ASSERT_THAT(log, IsOk());
  nodeward::v1::AuditRecord r;
  r.set_event("durable");
  ASSERT_THAT((*log)->Append(r), IsOk());
  fs_.Crash();
  EXPECT_NE(fs_.Content(kPath).find("durable"), std::string::npos);
  fs_.FailNextSync(absl::StatusCode::kDataLoss);
  EXPECT_FALSE((*log)->Append(r).ok());
  EXPECT_THAT((*log)->Append(r), StatusIs(absl::StatusCode::kDataLoss));
  auto reopened = AuditLog::Open(&fs_, kPath);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_THAT((*reopened)->Append(r), IsOk());
  EXPECT_THAT(VerifyAuditChain(fs_.Content(kPath)), IsOk());
}

}  // namespace
}  // namespace nodeward

namespace nodeward {
namespace {

// WatchAudit reads through AuditLog::Read: records kept in memory, records
// evicted from memory (read back by offset) and records found by Open all
// come back exactly as the file has them, in order, with no gap.
TEST(AuditLogReadTest, MemoryEvictedAndReopenedRecordsReadBackAsTheFileHasThem) {
  platform::FakeFileSystem fs;
  constexpr char kPath[] = "/state/audit.jsonl";
  const uint64_t n = AuditLog::kRecentKept + 100;
  {
    auto log = AuditLog::Open(&fs, kPath);
    ASSERT_THAT(log, testing::IsOk());
    for (uint64_t i = 0; i < n; ++i) {
      nodeward::v1::AuditRecord r;
      r.set_event("tick");
      r.set_message(std::string(i % 7, 'x'));  // lines of different lengths
      ASSERT_THAT((*log)->Append(r), testing::IsOk());
    }
    EXPECT_EQ((*log)->DurableHead().records, n);
    std::vector<std::string> lines = absl::StrSplit(fs.Content(kPath), '\n', absl::SkipEmpty());
    for (uint64_t from : {uint64_t{0}, uint64_t{99}, uint64_t{100}, n - 1}) {
      auto got = (*log)->Read(from, 1024);
      ASSERT_THAT(got, testing::IsOk());
      ASSERT_EQ(got->size(), std::min<uint64_t>(1024, n - from)) << from;
      for (size_t k = 0; k < got->size(); ++k) {
        EXPECT_EQ((*got)[k].index(), from + k);
        EXPECT_EQ(ToJsonLine((*got)[k]), lines[from + k]) << from + k;
      }
    }
    EXPECT_TRUE((*log)->Read(n, 10)->empty());
    auto h = (*log)->HashAt(5);
    ASSERT_THAT(h, testing::IsOk());
    auto five = (*log)->Read(5, 1);
    EXPECT_EQ(*h, (*five)[0].hash());
    EXPECT_THAT((*log)->HashAt(n), testing::StatusIs(absl::StatusCode::kOutOfRange));
  }
  // Reopened: everything before is read back from the file; an edit made
  // behind the agent's back is DATA_LOSS, never shipped as if it were the chain.
  auto log = AuditLog::Open(&fs, kPath);
  ASSERT_THAT(log, testing::IsOk());
  auto all = (*log)->Read(0, n);
  ASSERT_THAT(all, testing::IsOk());
  EXPECT_EQ(all->size(), n);
  std::string c = fs.Content(kPath);
  c.replace(c.find("\"tick\""), 6, "\"tock\"");
  ASSERT_THAT(fs.WriteFileAtomically(kPath, c, 0600), testing::IsOk());
  EXPECT_THAT((*log)->Read(0, 1), testing::StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace nodeward
