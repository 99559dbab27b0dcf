// The whole pipeline on fakes: verify -> journal -> apply -> outcome -> audit.
#include "agent/command/command_processor.h"

#include "agent/common/proto_util.h"
#include "gtest/gtest.h"
#include "tests/common/command_factory.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_file_system.h"

namespace nodeward {
namespace {

using absl::StatusCode;
using testing::CommandFactory;
using testing::IsOk;
using testing::Rejected;

// Counts applications: the observable "state" of these tests.
class CountingHandler final : public CommandHandler {
 public:
  explicit CountingHandler(int* count, platform::FakeClock* clock = nullptr)
      : count_(count), clock_(clock) {}
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& c) override {
    ++*count_;
    if (c.command.ping().note() == "slow" && clock_ != nullptr) clock_->Advance(absl::Milliseconds(250));
    if (c.command.ping().note() == "fail") return absl::InternalError("ping: told to fail");
    if (c.command.ping().note() == "refuse") {
      return WithReason(absl::FailedPreconditionError("ping: told to refuse"),
                        reason::kFirewallGenerationStale);
    }
    nodeward::v1::CommandResult r;
    r.mutable_ping()->set_note(c.command.ping().note());
    return r;
  }

 private:
  int* count_;
  platform::FakeClock* clock_;
};

class ProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void Start() {
    processor_.reset();
    audit_.reset();
    ledger_ = CommandLedger::Open(&fs_, LedgerOptions{"/state"}, clock_.Now());
    audit_ = AuditLog::Open(&audit_fs_, "/state/audit.jsonl").value();
    HandlerMap h;
    h["ping"] = std::make_unique<CountingHandler>(&applied_, &clock_);
    processor_ = std::make_unique<CommandProcessor>(&clock_, f_.Identity(), VerifierLimits{},
                                                    f_.TrustStoreFor(), ledger_.get(),
                                                    audit_.get(), std::move(h));
  }
  absl::StatusOr<nodeward::v1::CommandResult> Send(const nodeward::v1::Command& c) {
    return processor_->Execute(f_.Sign(c), "test-peer");
  }

  platform::FakeClock clock_;
  platform::FakeFileSystem fs_;
  platform::FakeFileSystem audit_fs_;  // the audit log's disk, failed on its own
  CommandFactory f_;
  int applied_ = 0;
  std::unique_ptr<CommandLedger> ledger_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<CommandProcessor> processor_;
};

TEST_F(ProcessorTest, AppliesPingOnceAndRecordsIt) {
  auto r = Send(f_.Ping(1, clock_.Now()));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->command_id(), f_.Ping(1, clock_.Now()).command_id());
  EXPECT_EQ(r->ping().note(), "hello");
  EXPECT_FALSE(r->replayed());
  EXPECT_EQ(applied_, 1);
  auto stats = processor_->Stats();
  EXPECT_EQ(stats.applied, 1u);
  EXPECT_EQ(stats.high_water_mark, 1u);
  ASSERT_EQ(stats.recent.size(), 1u);
  EXPECT_EQ(stats.recent[0].decision(), "applied");
  auto chain = VerifyAuditChain(audit_fs_.Content("/state/audit.jsonl"));
  ASSERT_THAT(chain, IsOk());
  EXPECT_EQ(chain->records, 1u);
}

// The result says how long the apply took (the agent's clock), and a replay
// returns the original's duration; the audit record (and so the journal
// entry) carries the whole receipt-to-outcome time.
TEST_F(ProcessorTest, ResultAndAuditCarryTheDuration) {
  nodeward::v1::Command c = f_.Ping(1, clock_.Now());
  c.mutable_ping()->set_note("slow");
  const std::string envelope = f_.Sign(c);
  auto r = processor_->Execute(envelope, "test-peer");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->apply_duration_ms(), 250u);
  auto again = processor_->Execute(envelope, "test-peer");
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->replayed());
  EXPECT_EQ(again->apply_duration_ms(), 250u);
  const std::string audit = audit_fs_.Content("/state/audit.jsonl");
  EXPECT_NE(audit.find("\"duration_ms\":\"250\""), std::string::npos) << audit;
}

// Counters and recent commands survive a restart (they come from the audit
// file): on b361d6c a node at sequence 10 said "1 applied" after a restart.
TEST_F(ProcessorTest, CountersAndRecentCommandsSurviveARestart) {
  const std::string ping1 = f_.Sign(f_.Ping(1, clock_.Now()));
  ASSERT_THAT(processor_->Execute(ping1, "p"), IsOk());
  ASSERT_THAT(Send(f_.Ping(2, clock_.Now())), IsOk());
  ASSERT_THAT(processor_->Execute(ping1, "p"), IsOk());  // replayed
  nodeward::v1::Command reused = f_.Ping(1, clock_.Now());
  reused.set_command_id("00000000-0000-4000-8000-0000000000ff");
  EXPECT_FALSE(Send(reused).ok());  // a new command, old sequence
  Start();  // a restart: new processor, same files
  auto stats = processor_->Stats();
  EXPECT_EQ(stats.applied, 2u);
  EXPECT_EQ(stats.replayed, 1u);
  EXPECT_EQ(stats.rejected, 1u);
  ASSERT_EQ(stats.recent.size(), 4u);
  EXPECT_EQ(stats.recent[0].decision(), "rejected");  // newest first
  EXPECT_EQ(stats.recent[3].sequence(), 1u);
  EXPECT_EQ(stats.recent[3].decision(), "applied");
}

// Cases 3 and 4: the replay returns the recorded outcome and applies nothing,
// also after a restart.
TEST_F(ProcessorTest, ReplayReturnsRecordedOutcomeWithoutApplying) {
  const std::string bytes = f_.Sign(f_.Ping(1, clock_.Now()));
  auto first = processor_->Execute(bytes, "p");
  ASSERT_THAT(first, IsOk());
  clock_.Advance(absl::Seconds(30));
  auto second = processor_->Execute(bytes, "p");
  ASSERT_THAT(second, IsOk());
  EXPECT_TRUE(second->replayed());
  EXPECT_EQ(second->applied_at().seconds(), first->applied_at().seconds());
  Start();
  auto third = processor_->Execute(bytes, "p");
  ASSERT_THAT(third, IsOk());
  EXPECT_TRUE(third->replayed());
  EXPECT_EQ(applied_, 1);
}

// Issue 14 point 2: a handler's own reason reaches the caller (not
// APPLY_FAILED), the refusal says its sequence number is used up, the audit
// calls it "failed"; a refusal before the ledger consumes nothing and is
// "rejected"; the refusal names the command it answers.
TEST_F(ProcessorTest, HandlerReasonsAndConsumedSequenceAreReported) {
  auto c = f_.Ping(1, clock_.Now());
  c.mutable_ping()->set_note("refuse");
  const std::string bytes = f_.Sign(c);
  absl::StatusOr<nodeward::v1::CommandResult> r = processor_->Execute(bytes, "p");
  EXPECT_THAT(r, Rejected(StatusCode::kFailedPrecondition, reason::kFirewallGenerationStale));
  EXPECT_TRUE(SequenceConsumed(r.status()));
  auto named = r.status().GetPayload(kRefusalResultUrl);
  ASSERT_TRUE(named.has_value());
  nodeward::v1::CommandResult refusal;
  ASSERT_TRUE(refusal.ParseFromString(std::string(*named)));
  EXPECT_EQ(refusal.command_id(), c.command_id());
  EXPECT_EQ(refusal.sequence(), 1u);
  // The exact replay: the recorded refusal, still consumed.
  absl::StatusOr<nodeward::v1::CommandResult> again = processor_->Execute(bytes, "p");
  EXPECT_THAT(again, Rejected(StatusCode::kFailedPrecondition, reason::kFirewallGenerationStale));
  EXPECT_TRUE(SequenceConsumed(again.status()));
  // A new command with the same sequence: refused by the ledger, not consumed.
  auto reused = f_.Ping(1, clock_.Now());
  reused.set_command_id("00000000-0000-4000-8000-0000000000fe");
  absl::StatusOr<nodeward::v1::CommandResult> stale = Send(reused);
  EXPECT_THAT(stale, Rejected(StatusCode::kAlreadyExists, reason::kSequenceReplayed));
  EXPECT_FALSE(SequenceConsumed(stale.status()));
  EXPECT_EQ(processor_->Stats().high_water_mark, 1u);
  auto recent = processor_->Stats().recent;
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent[0].decision(), "rejected");
  EXPECT_EQ(recent[1].decision(), "replayed");
  EXPECT_EQ(recent[2].decision(), "failed");
  EXPECT_EQ(recent[2].reason(), reason::kFirewallGenerationStale);
}

TEST_F(ProcessorTest, FailedApplyIsRecordedAndReplayedAsFailure) {
  auto c = f_.Ping(1, clock_.Now());
  c.mutable_ping()->set_note("fail");
  const std::string bytes = f_.Sign(c);
  EXPECT_THAT(processor_->Execute(bytes, "p"),
              Rejected(StatusCode::kInternal, reason::kApplyFailed));
  EXPECT_THAT(processor_->Execute(bytes, "p"),
              Rejected(StatusCode::kInternal, reason::kApplyFailed));
  EXPECT_EQ(applied_, 1);
}

// Case 48 and the e2e promise: a journal write failure refuses before apply.
TEST_F(ProcessorTest, JournalFailureRefusesBeforeApply) {
  fs_.FailNext(StatusCode::kResourceExhausted);
  EXPECT_THAT(Send(f_.Ping(1, clock_.Now())),
              Rejected(StatusCode::kUnavailable, reason::kStateUnavailable));
  EXPECT_EQ(applied_, 0);
  auto stats = processor_->Stats();
  EXPECT_EQ(stats.high_water_mark, 0u);
  EXPECT_FALSE(stats.state_error.empty());
}

TEST_F(ProcessorTest, RejectionsAreAuditedWithReason) {
  auto c = f_.Ping(1, clock_.Now());
  c.set_node_id("node-b");
  EXPECT_THAT(Send(c), Rejected(StatusCode::kFailedPrecondition, reason::kWrongTarget));
  EXPECT_EQ(applied_, 0);
  std::string audit = audit_fs_.Content("/state/audit.jsonl");
  nodeward::v1::AuditRecord r;
  ASSERT_THAT(ParseJson(audit.substr(0, audit.size() - 1), &r, "audit"), IsOk());
  EXPECT_EQ(r.decision(), "rejected");
  EXPECT_EQ(r.reason(), reason::kWrongTarget);
  EXPECT_EQ(r.peer(), "test-peer");
  EXPECT_EQ(processor_->Stats().rejected, 1u);
}

// Issue "Hardening I" point 5: the audit trail fails closed. Each line is
// durable before the outcome is returned; while a line cannot be written,
// state-changing commands are refused (AUDIT_UNAVAILABLE, sequence not
// consumed) and health says why; once writes work again, one record says so.
TEST_F(ProcessorTest, AuditWriteFailureRefusesStateChangingCommands) {
  ASSERT_THAT(Send(f_.Ping(1, clock_.Now())), IsOk());
  audit_fs_.Crash();  // drops whatever was not synced
  ASSERT_THAT(VerifyAuditChain(audit_fs_.Content("/state/audit.jsonl")), IsOk());
  EXPECT_EQ(VerifyAuditChain(audit_fs_.Content("/state/audit.jsonl"))->records, 1u);

  audit_fs_.FailAll(StatusCode::kResourceExhausted);
  // Applied (its outcome is journaled) but its audit line failed.
  ASSERT_THAT(Send(f_.Ping(2, clock_.Now())), IsOk());
  auto stats = processor_->Stats();
  EXPECT_FALSE(stats.audit_error.empty());
  EXPECT_THAT(Send(f_.Ping(3, clock_.Now())),
              Rejected(StatusCode::kUnavailable, reason::kAuditUnavailable));
  EXPECT_EQ(applied_, 2);
  EXPECT_EQ(processor_->Stats().high_water_mark, 2u);  // 3 was not consumed

  audit_fs_.ClearFailures();
  ASSERT_THAT(Send(f_.Ping(3, clock_.Now())), IsOk());
  EXPECT_TRUE(processor_->Stats().audit_error.empty());
  const std::string audit = audit_fs_.Content("/state/audit.jsonl");
  ASSERT_THAT(VerifyAuditChain(audit), IsOk());
  EXPECT_NE(audit.find("audit_resumed"), std::string::npos);
}

// Point 6: refusals before the pipeline are audited with the peer, at most
// kRefusalsAuditedPerMinute one by one; the rest are counted in a summary.
TEST_F(ProcessorTest, EarlyRefusalsAreAuditedWithABound) {
  const absl::Status refusal = Reject(StatusCode::kPermissionDenied, reason::kPeerNotAllowed,
                                      "client certificate names no allowed orchestrator identity");
  for (int i = 0; i < 100; ++i) {
    processor_->RecordEarlyRefusal(absl::StrCat("ipv4:10.0.0.", i % 3, ":4000 spiffe://x"),
                                   "WatchHealth", refusal, RejectionFacts{});
  }
  auto count = [&] { return VerifyAuditChain(audit_fs_.Content("/state/audit.jsonl"))->records; };
  EXPECT_EQ(count(), static_cast<uint64_t>(CommandProcessor::kRefusalsAuditedPerMinute));
  EXPECT_EQ(processor_->Stats().rejected, 100u);
  processor_->FlushRefusalSummary();  // the minute is not over yet
  EXPECT_EQ(count(), static_cast<uint64_t>(CommandProcessor::kRefusalsAuditedPerMinute));
  clock_.Advance(absl::Seconds(61));
  processor_->FlushRefusalSummary();
  const std::string audit = audit_fs_.Content("/state/audit.jsonl");
  EXPECT_EQ(count(), CommandProcessor::kRefusalsAuditedPerMinute + 1u);
  EXPECT_NE(audit.find("70 more refusals"), std::string::npos) << audit;
  EXPECT_NE(audit.find("PEER_NOT_ALLOWED x70"), std::string::npos);
  EXPECT_NE(audit.find("\"rpc\":\"WatchHealth\""), std::string::npos);
  // A new minute records one by one again.
  processor_->RecordEarlyRefusal("p", "Execute", refusal, RejectionFacts{});
  EXPECT_EQ(count(), CommandProcessor::kRefusalsAuditedPerMinute + 2u);
}

TEST_F(ProcessorTest, TrustSwapAppliesToNextCommand) {
  auto trust = f_.Trust();
  trust.mutable_keys()->DeleteSubrange(0, 1);
  processor_->ReplaceTrust(TrustStore::Build(trust).value());
  EXPECT_THAT(Send(f_.Ping(1, clock_.Now())),
              Rejected(StatusCode::kUnauthenticated, reason::kKeyUnknown));
}

TEST_F(ProcessorTest, DrainRefusesNewCommands) {
  processor_->Drain();
  EXPECT_THAT(Send(f_.Ping(1, clock_.Now())),
              Rejected(StatusCode::kUnavailable, reason::kShuttingDown));
  EXPECT_EQ(applied_, 0);
}

}  // namespace
}  // namespace nodeward
