// The audit chain detects an edit, a truncation in the middle, a reordering
// and a deleted record; a reopened log continues the chain.
#include "agent/state/audit_log.h"

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
