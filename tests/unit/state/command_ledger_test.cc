// Sequence, dedupe and durability (threats.md cases 3-5, 9, 10, 48).
#include "agent/state/command_ledger.h"

#include <atomic>
#include <thread>

#include "agent/common/crypto.h"
#include "agent/state/record_framing.h"
#include "gtest/gtest.h"
#include "tests/common/command_factory.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_file_system.h"

namespace nodeward {
namespace {

using absl::StatusCode;
using testing::CommandFactory;
using testing::IsOk;
using testing::Rejected;

class LedgerTest : public ::testing::Test {
 protected:
  std::unique_ptr<CommandLedger> Open(LedgerOptions o = {}) {
    o.dir = "/state";
    return CommandLedger::Open(&fs_, o, now_);
  }
  VerifiedCommand Cmd(uint64_t seq) {
    VerifiedCommand v;
    v.command = f_.Ping(seq, now_);
    v.command_type = "ping";
    v.payload_sha256 = Sha256(v.command.SerializeAsString());
    v.signer_key_ids = {"k"};
    return v;
  }
  nodeward::v1::Outcome Ok() {
    nodeward::v1::Outcome o;
    o.set_result("recorded-result");
    return o;
  }
  void AdmitAndFinish(CommandLedger* l, uint64_t seq) {
    ASSERT_THAT(l->Admit(Cmd(seq), now_), IsOk());
    ASSERT_THAT(l->RecordOutcome(Cmd(seq).command.command_id(), Ok()), IsOk());
  }

  platform::FakeFileSystem fs_;
  CommandFactory f_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(LedgerTest, FreshLedgerWritesSnapshotAndAcceptsFirstCommand) {
  auto l = Open();
  ASSERT_THAT(l->health(), IsOk());
  EXPECT_TRUE(fs_.Exists("/state/snapshot"));
  auto a = l->Admit(Cmd(1), now_);
  ASSERT_THAT(a, IsOk());
  EXPECT_FALSE(a->replay);
  EXPECT_EQ(l->high_water_mark(), 1u);
}

// Case 3.
TEST_F(LedgerTest, ExactReplayReturnsRecordedOutcome) {
  auto l = Open();
  AdmitAndFinish(l.get(), 1);
  auto a = l->Admit(Cmd(1), now_);
  ASSERT_THAT(a, IsOk());
  EXPECT_TRUE(a->replay);
  EXPECT_EQ(a->recorded.result(), "recorded-result");
}

TEST_F(LedgerTest, ReplayWhileInFlightIsInProgress) {
  auto l = Open();
  ASSERT_THAT(l->Admit(Cmd(1), now_), IsOk());
  EXPECT_THAT(l->Admit(Cmd(1), now_), Rejected(StatusCode::kAborted, reason::kCommandInProgress));
}

TEST_F(LedgerTest, SameIdDifferentPayloadIsReuse) {
  auto l = Open();
  AdmitAndFinish(l.get(), 1);
  auto other = Cmd(1);
  other.payload_sha256 = Sha256("different");
  EXPECT_THAT(l->Admit(other, now_), Rejected(StatusCode::kAlreadyExists, reason::kCommandIdReused));
}

TEST_F(LedgerTest, OldOrEqualSequenceWithNewIdIsReplayed) {
  auto l = Open();
  AdmitAndFinish(l.get(), 5);
  auto c = Cmd(5);
  c.command.set_command_id("00000000-0000-4000-8000-0000000000ff");
  EXPECT_THAT(l->Admit(c, now_), Rejected(StatusCode::kAlreadyExists, reason::kSequenceReplayed));
  c = Cmd(4);
  EXPECT_THAT(l->Admit(c, now_), Rejected(StatusCode::kAlreadyExists, reason::kSequenceReplayed));
  EXPECT_EQ(l->high_water_mark(), 5u);
}

// Case 10.
TEST_F(LedgerTest, SequenceJumpBeyondMaximumIsRejected) {
  LedgerOptions o;
  o.max_sequence_jump = 100;
  auto l = Open(o);
  EXPECT_THAT(l->Admit(Cmd(101), now_),
              Rejected(StatusCode::kOutOfRange, reason::kSequenceJumpTooLarge));
  EXPECT_EQ(l->high_water_mark(), 0u);
  EXPECT_THAT(l->Admit(Cmd(100), now_), IsOk());
}

// Case 4: seq and journal survive a restart.
TEST_F(LedgerTest, StateSurvivesReopen) {
  {
    auto l = Open();
    AdmitAndFinish(l.get(), 7);
  }
  auto l = Open();
  EXPECT_EQ(l->high_water_mark(), 7u);
  auto a = l->Admit(Cmd(7), now_);
  ASSERT_THAT(a, IsOk());
  EXPECT_TRUE(a->replay);
  EXPECT_THAT(l->Admit(Cmd(6), now_), Rejected(StatusCode::kAlreadyExists, reason::kSequenceReplayed));
}

// Acknowledged means durable: a power cut right after Admit returns keeps it.
TEST_F(LedgerTest, AdmittedIntentSurvivesPowerCut) {
  {
    auto l = Open();
    ASSERT_THAT(l->Admit(Cmd(3), now_), IsOk());
  }
  fs_.Crash();
  auto l = Open();
  EXPECT_EQ(l->high_water_mark(), 3u);
}

// Case 5: crash between intent and outcome -> in doubt, never applied twice.
TEST_F(LedgerTest, IntentWithoutOutcomeIsRecordedInDoubt) {
  {
    auto l = Open();
    ASSERT_THAT(l->Admit(Cmd(2), now_), IsOk());
  }
  auto l = Open();
  EXPECT_EQ(l->recovered_in_doubt(), std::vector<std::string>{Cmd(2).command.command_id()});
  auto a = l->Admit(Cmd(2), now_);
  ASSERT_THAT(a, IsOk());
  EXPECT_TRUE(a->replay);
  EXPECT_EQ(a->recorded.reason(), reason::kInDoubt);
  // And the in-doubt record itself is durable.
  l.reset();
  auto again = Open();
  EXPECT_TRUE(again->recovered_in_doubt().empty());
}

// Case 9: a clock set back a year never re-enables consumed sequences.
TEST_F(LedgerTest, ClockRegressionDoesNotReopenSequences) {
  auto l = Open();
  AdmitAndFinish(l.get(), 10);
  now_ -= absl::Hours(24 * 365);
  auto c = Cmd(9);
  EXPECT_THAT(l->Admit(c, now_), Rejected(StatusCode::kAlreadyExists, reason::kSequenceReplayed));
  EXPECT_THAT(l->Admit(Cmd(11), now_), IsOk());
}

// Case 48: ENOSPC while persisting -> refused before apply, state unchanged.
TEST_F(LedgerTest, JournalWriteFailureRefusesAndKeepsState) {
  auto l = Open();
  AdmitAndFinish(l.get(), 1);
  fs_.FailNext(StatusCode::kResourceExhausted);
  EXPECT_THAT(l->Admit(Cmd(2), now_),
              Rejected(StatusCode::kUnavailable, reason::kStateUnavailable));
  EXPECT_EQ(l->high_water_mark(), 1u);
  EXPECT_FALSE(l->health().ok());
  // Refuses from now on, even with the disk healthy again, until restart.
  EXPECT_THAT(l->Admit(Cmd(3), now_),
              Rejected(StatusCode::kUnavailable, reason::kStateUnavailable));
  l.reset();
  auto reopened = Open();
  EXPECT_THAT(reopened->health(), IsOk());
  EXPECT_EQ(reopened->high_water_mark(), 1u);
}

TEST_F(LedgerTest, SyncFailureRefuses) {
  auto l = Open();
  fs_.FailNextSync(StatusCode::kInternal);
  EXPECT_THAT(l->Admit(Cmd(1), now_),
              Rejected(StatusCode::kUnavailable, reason::kStateUnavailable));
  // After a failed fsync the page cache is not trusted: refuse until restart.
  EXPECT_THAT(l->Admit(Cmd(2), now_),
              Rejected(StatusCode::kUnavailable, reason::kStateUnavailable));
}

TEST_F(LedgerTest, UnwritableStateDirRefusesEverything) {
  fs_.FailAll(StatusCode::kPermissionDenied);
  auto l = Open();
  EXPECT_FALSE(l->health().ok());
  EXPECT_THAT(l->Admit(Cmd(1), now_),
              Rejected(StatusCode::kUnavailable, reason::kStateUnavailable));
}

TEST_F(LedgerTest, TornTailIsCutAndEarlierRecordsKept) {
  {
    auto l = Open();
    AdmitAndFinish(l.get(), 1);
  }
  std::string j = fs_.Content("/state/journal.1");
  fs_.SetContent("/state/journal.1", j + EncodeFrame("partial").substr(0, 10));
  auto l = Open();
  ASSERT_THAT(l->health(), IsOk());
  EXPECT_EQ(l->high_water_mark(), 1u);
  EXPECT_EQ(fs_.Content("/state/journal.1"), j);
}

TEST_F(LedgerTest, CorruptionInTheMiddleRefusesAndNeverResets) {
  {
    auto l = Open();
    AdmitAndFinish(l.get(), 1);
    AdmitAndFinish(l.get(), 2);
  }
  std::string j = fs_.Content("/state/journal.1");
  j[20] ^= 0x55;
  fs_.SetContent("/state/journal.1", j);
  auto l = Open();
  EXPECT_THAT(l->health(), testing::StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(l->Admit(Cmd(3), now_),
              Rejected(StatusCode::kUnavailable, reason::kStateUnavailable));
}

TEST_F(LedgerTest, CorruptSnapshotRefuses) {
  { auto l = Open(); }
  fs_.SetContent("/state/snapshot", "\xff\xff garbage");
  auto l = Open();
  EXPECT_THAT(l->health(), testing::StatusIs(StatusCode::kDataLoss));
}

TEST_F(LedgerTest, LostSnapshotWithJournalRefusesInsteadOfResetting) {
  {
    auto l = Open();
    AdmitAndFinish(l.get(), 9);
  }
  ASSERT_THAT(fs_.RemoveFile("/state/snapshot"), IsOk());
  auto l = Open();
  EXPECT_THAT(l->health(), testing::StatusIs(StatusCode::kDataLoss));
}

// Issue "Hardening I" point 4: after a compaction only journal.N (N >= 2)
// exists; fcf3c42 looked for journal.1 only, so a lost snapshot reset the
// high-water mark to 0 and an old envelope inside its expires_at applied
// again.
TEST_F(LedgerTest, LostSnapshotAfterCompactionRefusesInsteadOfResetting) {
  LedgerOptions o;
  o.compact_after_records = 4;
  {
    auto l = Open(o);
    for (uint64_t s = 1; s <= 9; ++s) AdmitAndFinish(l.get(), s);
  }
  ASSERT_FALSE(fs_.Exists("/state/journal.1"));
  ASSERT_THAT(fs_.RemoveFile("/state/snapshot"), IsOk());
  auto l = Open(o);
  EXPECT_THAT(l->health(), testing::StatusIs(StatusCode::kDataLoss));
  EXPECT_FALSE(l->Admit(Cmd(3), now_).ok());
  EXPECT_FALSE(fs_.Exists("/state/snapshot"));  // nothing was reset
}

TEST_F(LedgerTest, CompactionKeepsMarkAndRecentReplays) {
  LedgerOptions o;
  o.compact_after_records = 10;
  o.retain_entries = 3;
  {
    auto l = Open(o);
    for (uint64_t s = 1; s <= 12; ++s) AdmitAndFinish(l.get(), s);
  }
  EXPECT_FALSE(fs_.Exists("/state/journal.1"));
  auto l = Open(o);
  EXPECT_EQ(l->high_water_mark(), 12u);
  auto a = l->Admit(Cmd(12), now_);
  ASSERT_THAT(a, IsOk());
  EXPECT_TRUE(a->replay);
  // Older than what was retained: still never re-applied.
  EXPECT_THAT(l->Admit(Cmd(1), now_), Rejected(StatusCode::kAlreadyExists, reason::kSequenceReplayed));
}

// A compaction while other commands wait for their sync must not fail them.
TEST_F(LedgerTest, ConcurrentCommandsAcrossCompactionsAllSucceed) {
  LedgerOptions o;
  o.sequence_window = 64;
  o.compact_after_records = 16;
  o.retain_entries = 8;
  auto l = Open(o);
  std::atomic<int> failures{0};
  std::atomic<uint64_t> next{1};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        uint64_t seq = next++;
        auto mode = seq % 2 ? CommandLedger::Mode::kPure : CommandLedger::Mode::kWriteAhead;
        auto a = l->Admit(Cmd(seq), now_, mode);
        if (!a.ok() && ReasonOf(a.status()) == reason::kSequenceReplayed) continue;
        if (!a.ok() || !l->RecordOutcome(Cmd(seq).command.command_id(), Ok()).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_THAT(l->health(), IsOk());
  l.reset();
  EXPECT_EQ(Open(o)->high_water_mark(), 400u);
}

// Compaction does not wait for a quiet moment: a command in flight is carried
// into the snapshot and finishes in the new journal.
TEST_F(LedgerTest, CompactionCarriesCommandsInFlight) {
  LedgerOptions o;
  o.compact_after_records = 4;
  o.retain_entries = 1;
  {
    auto l = Open(o);
    ASSERT_THAT(l->Admit(Cmd(1), now_), IsOk());  // in flight throughout
    AdmitAndFinish(l.get(), 2);
    AdmitAndFinish(l.get(), 3);                    // crosses the threshold
    EXPECT_FALSE(fs_.Exists("/state/journal.1"));
    ASSERT_THAT(l->RecordOutcome(Cmd(1).command.command_id(), Ok()), IsOk());
  }
  fs_.Crash();
  auto l = Open(o);
  EXPECT_TRUE(l->recovered_in_doubt().empty());
  auto a = l->Admit(Cmd(1), now_);
  ASSERT_THAT(a, IsOk());
  EXPECT_TRUE(a->replay);
  EXPECT_EQ(a->recorded.result(), "recorded-result");
  EXPECT_EQ(l->high_water_mark(), 3u);
}

TEST_F(LedgerTest, CrashAfterCompactionLeavesInFlightCommandInDoubt) {
  LedgerOptions o;
  o.compact_after_records = 4;
  o.retain_entries = 1;
  {
    auto l = Open(o);
    ASSERT_THAT(l->Admit(Cmd(1), now_), IsOk());
    AdmitAndFinish(l.get(), 2);
    AdmitAndFinish(l.get(), 3);
  }
  fs_.Crash();
  auto l = Open(o);
  EXPECT_EQ(l->recovered_in_doubt(), std::vector<std::string>{Cmd(1).command.command_id()});
}

TEST_F(LedgerTest, WindowAcceptsUnusedSequencesBelowMarkOnce) {
  LedgerOptions o;
  o.sequence_window = 4;
  auto l = Open(o);
  AdmitAndFinish(l.get(), 10);
  EXPECT_THAT(l->Admit(Cmd(8), now_), IsOk());
  auto c = Cmd(8);
  c.command.set_command_id("00000000-0000-4000-8000-0000000000aa");
  EXPECT_THAT(l->Admit(c, now_), Rejected(StatusCode::kAlreadyExists, reason::kSequenceReplayed));
  EXPECT_THAT(l->Admit(Cmd(6), now_), Rejected(StatusCode::kAlreadyExists, reason::kSequenceReplayed));
}

TEST_F(LedgerTest, ConcurrentCommandsShareSyncs) {
  LedgerOptions o;
  o.sequence_window = 64;
  auto l = Open(o);
  int before = fs_.sync_count();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        uint64_t seq = static_cast<uint64_t>(t * 8 + i + 1);
        auto a = l->Admit(Cmd(seq), now_);
        if (a.ok()) (void)l->RecordOutcome(Cmd(seq).command.command_id(), Ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_THAT(l->health(), IsOk());
  // 64 commands, two records each: never more than one sync per record.
  EXPECT_LE(fs_.sync_count() - before, 128);
  l.reset();
  EXPECT_EQ(Open(o)->high_water_mark(), 64u);
}

// Pure commands: reserved in memory, intent and outcome made durable together.
TEST_F(LedgerTest, PureCommandIsJournaledOnceAfterItRan) {
  auto l = Open();
  int before = fs_.sync_count();
  ASSERT_THAT(l->Admit(Cmd(1), now_, CommandLedger::Mode::kPure), IsOk());
  EXPECT_EQ(fs_.sync_count(), before);
  EXPECT_THAT(l->Admit(Cmd(1), now_), Rejected(StatusCode::kAborted, reason::kCommandInProgress));
  ASSERT_THAT(l->RecordOutcome(Cmd(1).command.command_id(), Ok()), IsOk());
  EXPECT_EQ(fs_.sync_count(), before + 1);
  fs_.Crash();
  l = Open();
  auto a = l->Admit(Cmd(1), now_);
  ASSERT_THAT(a, IsOk());
  EXPECT_TRUE(a->replay);
  EXPECT_EQ(a->recorded.result(), "recorded-result");
}

TEST_F(LedgerTest, PureCommandWriteFailureLeavesNoTrace) {
  auto l = Open();
  AdmitAndFinish(l.get(), 1);
  ASSERT_THAT(l->Admit(Cmd(2), now_, CommandLedger::Mode::kPure), IsOk());
  fs_.FailNext(StatusCode::kResourceExhausted);
  EXPECT_THAT(l->RecordOutcome(Cmd(2).command.command_id(), Ok()),
              Rejected(StatusCode::kUnavailable, reason::kStateUnavailable));
  EXPECT_EQ(l->high_water_mark(), 1u);
  l.reset();
  EXPECT_EQ(Open()->high_water_mark(), 1u);
}

TEST(RecordFramingTest, RoundTripAndCorruptionKinds) {
  std::string a = EncodeFrame("alpha"), b = EncodeFrame("beta");
  auto d = DecodeFrames(a + b);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->bodies, (std::vector<std::string>{"alpha", "beta"}));
  EXPECT_FALSE(d->torn_tail);
  d = DecodeFrames(a + b.substr(0, 5));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->torn_tail);
  EXPECT_EQ(d->valid_bytes, a.size());
  d = DecodeFrames(a + std::string(40, '\0'));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->torn_tail);
  std::string bad = a;
  bad[17] ^= 1;
  EXPECT_EQ(DecodeFrames(bad + b).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeFrames("XXXX" + a).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace nodeward
