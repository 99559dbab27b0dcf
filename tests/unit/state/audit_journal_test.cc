// One structured journal entry per durable audit record, with fields an
// operator can filter on.
#include "agent/state/audit_journal.h"

#include <map>

#include "agent/state/audit_log.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_file_system.h"

namespace nodeward {
namespace {

using testing::IsOk;

std::map<std::string, std::string> Fields(const JournalEntry& e) {
  return {e.fields.begin(), e.fields.end()};
}

TEST(AuditJournalTest, ACommandCarriesItsFacts) {
  nodeward::v1::AuditRecord r;
  r.set_index(7);
  r.set_hash("ab12");
  r.set_peer("ipv4:10.0.0.9:51000");
  r.set_command_id("3f2a");
  r.set_sequence(12);
  r.set_command_type("wipe");
  r.add_signer_key_ids("k1");
  r.add_signer_key_ids("k2");
  r.set_decision("applied");
  JournalEntry e = ForJournal(r);
  auto f = Fields(e);
  EXPECT_EQ(f["COMMAND_TYPE"], "wipe");
  EXPECT_EQ(f["COMMAND_ID"], "3f2a");
  EXPECT_EQ(f["SEQUENCE"], "12");
  EXPECT_EQ(f["SIGNERS"], "k1,k2");
  EXPECT_EQ(f["OUTCOME"], "applied");
  EXPECT_EQ(f.count("DURATION_MS"), 1u);
  EXPECT_EQ(f["AUDIT_INDEX"], "7");
  EXPECT_EQ(e.priority, 6);
  EXPECT_EQ(e.message, "command 3f2a wipe seq 12: applied");
}

TEST(AuditJournalTest, ARefusalIsAWarningWithItsReasonOnOneLine) {
  nodeward::v1::AuditRecord r;
  r.set_rpc("Execute");
  r.set_decision("rejected");
  r.set_reason("MALFORMED");
  r.set_message("line one\nline two");
  JournalEntry e = ForJournal(r);
  EXPECT_EQ(e.priority, 4);
  EXPECT_EQ(Fields(e)["REASON"], "MALFORMED");
  EXPECT_EQ(Fields(e)["RPC"], "Execute");
  EXPECT_EQ(e.message.find('\n'), std::string::npos) << e.message;
}

TEST(AuditJournalTest, EveryDurableRecordReachesTheObserver) {
  platform::FakeFileSystem fs;
  auto log = AuditLog::Open(&fs, "/audit.log");
  ASSERT_THAT(log, IsOk());
  std::vector<std::string> seen;
  (*log)->set_observer([&](const nodeward::v1::AuditRecord& r) {
    seen.push_back(ForJournal(r).message);
  });
  nodeward::v1::AuditRecord a;
  a.set_event("firewall_drift");
  a.set_message("table deleted by nft");
  ASSERT_THAT((*log)->Append(a), IsOk());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "firewall_drift: table deleted by nft");
}

}  // namespace
}  // namespace nodeward
