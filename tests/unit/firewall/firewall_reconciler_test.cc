// ApplyFirewall on fakes: validation before the kernel, dry run changes
// nothing, persistence and boot restore, management access always present,
// and kernel and disk never disagree.
#include "agent/firewall/firewall_reconciler.h"
#include "nodeward/v1/state.pb.h"

#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_file_system.h"
#include "tests/fakes/fake_packet_filter.h"

namespace nodeward::firewall {
namespace {

using absl::StatusCode;
using testing::IsOk;
using testing::StatusIs;

ManagementAccess Mgmt() {
  return {{ParseCidr("203.0.113.0/24").value(), ParseCidr("2001:db8:ffff::/48").value()},
          {7443, 22}};
}

VerifiedCommand Cmd(uint64_t generation, std::vector<std::string> cidrs, bool dry_run = false) {
  VerifiedCommand v;
  auto* a = v.command.mutable_apply_firewall();
  a->set_generation(generation);
  a->set_dry_run(dry_run);
  auto* s = a->add_services();
  s->set_name("pg");
  s->set_protocol(nodeward::v1::PROTOCOL_TCP);
  s->add_ports()->set_first(5432);
  for (const auto& c : cidrs) s->add_allowed_cidrs(c);
  a->add_internal_peers("10.0.0.2");
  v.command_type = "apply_firewall";
  return v;
}

bool HasRuleFor(const platform::FilterRuleset& r, const std::string& set) {
  for (const auto& rule : r.rules) {
    if (rule.source_set == set) return true;
  }
  return false;
}

class ReconcilerTest : public ::testing::Test {
 protected:
  size_t SetSize(const std::string& name) const {
    const std::optional<platform::FilterRuleset> t = filter_.table();
    if (!t.has_value()) return 0;
    for (const auto& s : t->sets) {
      if (s.name == name) return s.intervals.size();
    }
    return 0;
  }
  platform::FakePacketFilter filter_;
  platform::FakeFileSystem fs_;
  platform::FakeClock clock_;
  FirewallReconciler rec_{&filter_, &fs_, &clock_, "/state/firewall.pb", Mgmt()};
};

TEST_F(ReconcilerTest, FirstBootAppliesManagementOnlyBaseline) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  ASSERT_TRUE(filter_.table().has_value());
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "mgmt_v4"));
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "mgmt_v6"));
  EXPECT_FALSE(HasRuleFor(*filter_.table(), "svc_pg_v4"));
  EXPECT_EQ(rec_.generation(), 0u);
}

TEST_F(ReconcilerTest, AppliesPersistsAndRestores) {
  auto r = rec_.Apply(Cmd(1, {"192.168.1.15/32", "10.1.2.3/8"}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->firewall().generation(), 1u);
  ASSERT_EQ(r->firewall().normalised_size(), 1);
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "svc_pg_v4"));
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "peers_v4"));
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "mgmt_v4"));  // never removable
  // A restart restores exactly that state and generation.
  platform::FakePacketFilter fresh;
  FirewallReconciler again(&fresh, &fs_, &clock_, "/state/firewall.pb", Mgmt());
  ASSERT_THAT(again.Restore(), IsOk());
  EXPECT_EQ(again.generation(), 1u);
  ASSERT_TRUE(fresh.table().has_value());
  EXPECT_EQ(fresh.table()->sets.size(), filter_.table()->sets.size());
}

TEST_F(ReconcilerTest, DryRunChangesNothing) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  int before = filter_.commits();
  const std::string saved = fs_.Content("/state/firewall.pb");
  auto r = rec_.Apply(Cmd(1, {"192.168.1.15/32"}, /*dry_run=*/true));
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->firewall().dry_run());
  EXPECT_EQ(r->firewall().ipv4_intervals(), 3u);  // mgmt, peer, service
  EXPECT_EQ(filter_.commits(), before);
  EXPECT_EQ(fs_.Content("/state/firewall.pb"), saved);
  EXPECT_EQ(rec_.generation(), 0u);
}

// The boot fallback (nodeward-firewall.service with a broken config) needs
// the management access the state was written under: the first Restore
// records it, with the table, before any apply.
TEST_F(ReconcilerTest, RestoreRecordsManagementAccessAndTable) {
  rec_.set_table("nodeward");
  ASSERT_THAT(rec_.Restore(), IsOk());
  nodeward::v1::FirewallState st;
  ASSERT_TRUE(st.ParseFromString(fs_.Content("/state/firewall.pb")));
  EXPECT_EQ(st.table(), "nodeward");
  ASSERT_GT(st.management_cidrs_size(), 0);
  EXPECT_EQ(st.generation(), 0u);
  // A second restart with the same config writes nothing new.
  const std::string saved = fs_.Content("/state/firewall.pb");
  ASSERT_THAT(rec_.Restore(), IsOk());
  EXPECT_EQ(fs_.Content("/state/firewall.pb"), saved);
}

TEST_F(ReconcilerTest, RefusalsLeaveKernelAndStateUnchanged) {
  ASSERT_THAT(rec_.Apply(Cmd(2, {"192.168.1.15/32"})), IsOk());
  const auto before = *filter_.table();
  const std::string saved = fs_.Content("/state/firewall.pb");
  EXPECT_THAT(rec_.Apply(Cmd(2, {"192.168.1.16/32"})), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(rec_.Apply(Cmd(3, {"0.0.0.0/0"})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(rec_.Apply(Cmd(3, {"10.0.0.0/33"})), StatusIs(StatusCode::kInvalidArgument));
  auto no_proto = Cmd(3, {"1.2.3.4"});
  no_proto.command.mutable_apply_firewall()->mutable_services(0)->set_protocol(
      nodeward::v1::PROTOCOL_UNSPECIFIED);
  EXPECT_THAT(rec_.Apply(no_proto), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(fs_.Content("/state/firewall.pb"), saved);
  EXPECT_EQ(filter_.table()->sets.size(), before.sets.size());
  EXPECT_EQ(rec_.generation(), 2u);
}

TEST_F(ReconcilerTest, KernelRefusalChangesNothing) {
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  filter_.FailNext(StatusCode::kInvalidArgument);
  EXPECT_THAT(rec_.Apply(Cmd(2, {"192.168.1.16/32"})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(rec_.generation(), 1u);
}

TEST_F(ReconcilerTest, PersistFailureRestoresPreviousRuleset) {
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  const size_t sets_before = filter_.table()->sets.size();
  fs_.FailNext(StatusCode::kResourceExhausted);
  auto c = Cmd(2, {"192.168.1.16/32", "2001:db8:1::/48"});
  EXPECT_THAT(rec_.Apply(c), StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(filter_.table()->sets.size(), sets_before);  // v6 service set gone again
  EXPECT_EQ(rec_.generation(), 1u);
}

VerifiedCommand Confirm(uint64_t generation) {
  VerifiedCommand v;
  v.command.mutable_confirm_firewall()->set_generation(generation);
  v.command_type = "confirm_firewall";
  return v;
}

// Commit-confirmed (threats.md case 36): no confirmation in time, rollback.
TEST_F(ReconcilerTest, UnconfirmedApplyRollsBackAtTheDeadline) {
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  auto risky = Cmd(2, {"192.168.1.16/32", "2001:db8:1::/48"});
  risky.command.mutable_apply_firewall()->set_confirm_within_seconds(10);
  auto r = rec_.Apply(risky);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->firewall().awaiting_confirmation());
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "svc_pg_v6"));
  EXPECT_EQ(rec_.status().generation, 2u);
  EXPECT_TRUE(rec_.status().awaiting_confirmation);
  clock_.Advance(absl::Seconds(9));
  ASSERT_THAT(rec_.CheckDeadline(clock_.Now()), IsOk());
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "svc_pg_v6"));
  clock_.Advance(absl::Seconds(2));
  ASSERT_THAT(rec_.CheckDeadline(clock_.Now()), IsOk());
  EXPECT_FALSE(HasRuleFor(*filter_.table(), "svc_pg_v6"));  // back to generation 1
  EXPECT_EQ(rec_.status().generation, 1u);
  EXPECT_EQ(rec_.status().rollbacks, 1u);
  EXPECT_NE(rec_.status().last_rollback.find("generation 2"), std::string::npos);
  // Too late to confirm, and generation 2 can never be applied again.
  EXPECT_THAT(rec_.Apply(Confirm(2)), StatusIs(StatusCode::kFailedPrecondition));
  auto again = rec_.Apply(Cmd(2, {"192.168.1.16/32"}));
  EXPECT_THAT(again, StatusIs(StatusCode::kFailedPrecondition));
  // The refusal names the highest generation, not the one in force (1): the
  // old message said "not above the current 2" while 1 was in force.
  EXPECT_NE(again.status().message().find("not above 2, the highest ever applied"),
            std::string::npos)
      << again.status();
  EXPECT_EQ(rec_.status().generation, 1u);
  EXPECT_EQ(rec_.status().highest_generation, 2u);
  EXPECT_THAT(rec_.Apply(Cmd(3, {"192.168.1.16/32"})), IsOk());
  EXPECT_EQ(rec_.status().highest_generation, 3u);
}

// Issue "Hardening II" point 12: a rollback that fails is visible (the
// status error, so health is DEGRADED) and retried; meanwhile the expired
// generation is never treated as desired (on fcf3c42 the periodic verify
// kept it and health stayed SERVING) nor confirmable.
TEST_F(ReconcilerTest, FailedRollbackIsReportedAndRetried) {
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  auto risky = Cmd(2, {"192.168.1.16/32", "2001:db8:1::/48"});
  risky.command.mutable_apply_firewall()->set_confirm_within_seconds(10);
  ASSERT_THAT(rec_.Apply(risky), IsOk());
  clock_.Advance(absl::Seconds(11));
  filter_.FailNext(StatusCode::kUnavailable);
  EXPECT_FALSE(rec_.CheckDeadline(clock_.Now()).ok());
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "svc_pg_v6"));  // still the kernel's
  EXPECT_NE(rec_.status().error.find("roll back unconfirmed generation 2"), std::string::npos)
      << rec_.status().error;
  EXPECT_EQ(rec_.status().rollbacks, 1u);
  EXPECT_THAT(rec_.Apply(Confirm(2)), StatusIs(StatusCode::kFailedPrecondition));
  clock_.Advance(absl::Seconds(1));
  ASSERT_THAT(rec_.CheckDeadline(clock_.Now()), IsOk());  // the retry
  EXPECT_FALSE(HasRuleFor(*filter_.table(), "svc_pg_v6"));
  EXPECT_TRUE(rec_.status().error.empty());
  EXPECT_EQ(rec_.status().generation, 1u);
  // The read-back agrees: nothing to repair toward generation 2.
  ASSERT_THAT(rec_.Verify("periodic read-back"), IsOk());
  EXPECT_FALSE(HasRuleFor(*filter_.table(), "svc_pg_v6"));
}

TEST_F(ReconcilerTest, ConfirmedApplyStaysAndSurvivesRestart) {
  auto risky = Cmd(1, {"192.168.1.16/32"});
  risky.command.mutable_apply_firewall()->set_confirm_within_seconds(10);
  ASSERT_THAT(rec_.Apply(risky), IsOk());
  auto c = rec_.Apply(Confirm(1));
  ASSERT_THAT(c, IsOk());
  EXPECT_TRUE(c->firewall().confirmed());
  clock_.Advance(absl::Seconds(60));
  ASSERT_THAT(rec_.CheckDeadline(clock_.Now()), IsOk());
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "svc_pg_v4"));
  EXPECT_EQ(rec_.status().rollbacks, 0u);
  EXPECT_THAT(rec_.Apply(Confirm(1)), IsOk());  // idempotent
  platform::FakePacketFilter fresh;
  FirewallReconciler again(&fresh, &fs_, &clock_, "/state/firewall.pb", Mgmt());
  ASSERT_THAT(again.Restore(), IsOk());
  EXPECT_TRUE(HasRuleFor(*fresh.table(), "svc_pg_v4"));
}

TEST_F(ReconcilerTest, RestartBeforeConfirmationIsARollback) {
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  auto risky = Cmd(2, {"2001:db8:1::/48"});
  risky.command.mutable_apply_firewall()->set_confirm_within_seconds(30);
  ASSERT_THAT(rec_.Apply(risky), IsOk());
  platform::FakePacketFilter fresh;
  FirewallReconciler again(&fresh, &fs_, &clock_, "/state/firewall.pb", Mgmt());
  ASSERT_THAT(again.Restore(), IsOk());
  EXPECT_TRUE(HasRuleFor(*fresh.table(), "svc_pg_v4"));
  EXPECT_FALSE(HasRuleFor(*fresh.table(), "svc_pg_v6"));
  EXPECT_EQ(again.status().generation, 1u);
  // The unconfirmed generation stays consumed.
  EXPECT_THAT(again.Apply(Cmd(2, {"1.2.3.4"})), StatusIs(StatusCode::kFailedPrecondition));
}

TEST_F(ReconcilerTest, CorruptStateKeepsManagementOpen) {
  fs_.SetContent("/state/firewall.pb", "\xff\xff garbage");
  EXPECT_THAT(rec_.Restore(), StatusIs(StatusCode::kDataLoss));
  ASSERT_TRUE(filter_.table().has_value());
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "mgmt_v4"));
}

// Restart with an unchanged state: the kernel is read, found right, and
// not written at all.
TEST_F(ReconcilerTest, RestartWithUnchangedStateChangesNothing) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  const int commits = filter_.commits();
  const uint32_t genid = filter_.genid();
  FirewallReconciler again(&filter_, &fs_, &clock_, "/state/firewall.pb", Mgmt());
  ASSERT_THAT(again.Restore(), IsOk());
  EXPECT_EQ(filter_.commits(), commits);
  EXPECT_EQ(filter_.genid(), genid);
  EXPECT_EQ(again.status().content_hash, rec_.status().content_hash);
}

// Only the changed element travels.
TEST_F(ReconcilerTest, AllowListChangeIsIncremental) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32", "198.51.100.0/24"})), IsOk());
  auto r = rec_.Apply(Cmd(2, {"192.168.1.15/32", "198.51.100.0/24", "203.0.113.7/32"}));
  ASSERT_THAT(r, IsOk());
  platform::FilterChange c = filter_.last_change();
  EXPECT_FALSE(c.replace_table);
  EXPECT_FALSE(c.base_rules.has_value());
  ASSERT_EQ(c.add_elements.size(), 1u);
  EXPECT_EQ(c.add_elements[0].intervals.size(), 1u);
  EXPECT_EQ(r->firewall().plan(), "+1 -0 elements in 1 sets");
}

TEST_F(ReconcilerTest, DryRunReportsTheDiff) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  const int commits = filter_.commits();
  auto r = rec_.Apply(Cmd(2, {"192.168.1.16/32"}, /*dry_run=*/true));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->firewall().plan(), "+1 -1 elements in 1 sets");
  EXPECT_EQ(filter_.commits(), commits);
}

// A foreign edit of our table, seen by the monitor: repaired at once,
// counted, and the culprit named.
TEST_F(ReconcilerTest, ForeignEditIsRepairedAndReported) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  const std::string good = rec_.status().content_hash;
  auto watch = filter_.Watch().value();
  ASSERT_THAT(rec_.OnEvents(watch->Wait(absl::ZeroDuration()).value()), IsOk());  // own events
  EXPECT_EQ(rec_.status().drift_repairs, 0u);
  filter_.ForeignChange([](platform::KernelTable* t) {
    for (auto& s : t->ruleset.sets) {
      if (s.name == "svc_pg_v4") s.intervals.push_back({0x01020304, 0x01020304});
    }
  });
  ASSERT_THAT(rec_.OnEvents(watch->Wait(absl::ZeroDuration()).value()), IsOk());
  EXPECT_EQ(rec_.status().drift_repairs, 1u);
  EXPECT_NE(rec_.status().last_drift.find("by nft (pid 4242)"), std::string::npos)
      << rec_.status().last_drift;
  EXPECT_NE(rec_.status().last_drift.find("-1 elements"), std::string::npos)
      << rec_.status().last_drift;
  EXPECT_EQ(rec_.status().content_hash, good);
  EXPECT_EQ(SetSize("svc_pg_v4"), 1u);
}

// The whole table deleted (nft flush ruleset): put back.
TEST_F(ReconcilerTest, DeletedTableIsRestored) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  filter_.ForeignChange([](platform::KernelTable* t) {
    t->exists = false;
    t->ruleset = {};
  });
  ASSERT_THAT(rec_.Verify("periodic read-back"), IsOk());
  ASSERT_TRUE(filter_.table().has_value());
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "svc_pg_v4"));
  EXPECT_EQ(rec_.status().drift_repairs, 1u);
  EXPECT_NE(rec_.status().last_drift.find("table missing"), std::string::npos);
}

// Other tables' changes only move the generation: no read, no repair.
TEST_F(ReconcilerTest, OtherTablesChangesAreIgnored) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  auto watch = filter_.Watch().value();
  (void)watch->Wait(absl::ZeroDuration());
  const int reads = filter_.reads();
  filter_.ForeignChange([](platform::KernelTable*) {}, /*touches_table=*/false);
  ASSERT_THAT(rec_.OnEvents(watch->Wait(absl::ZeroDuration()).value()), IsOk());
  EXPECT_EQ(filter_.reads(), reads);
  EXPECT_EQ(rec_.status().drift_repairs, 0u);
  // The known generation moved with it, so the next apply commits at once.
  ASSERT_THAT(rec_.Apply(Cmd(2, {"192.168.1.16/32"})), IsOk());
  EXPECT_EQ(filter_.reads(), reads);
}

// Another writer committed without us seeing it yet: the generation guard
// refuses, the reconciler re-reads and plans again.
TEST_F(ReconcilerTest, GenerationConflictIsRetriedAfterARead) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  filter_.ForeignChange([](platform::KernelTable* t) {
    for (auto& s : t->ruleset.sets) {
      if (s.name == "svc_pg_v4") s.intervals.clear();
    }
  });
  const int reads = filter_.reads();
  ASSERT_THAT(rec_.Apply(Cmd(2, {"192.168.1.15/32", "192.168.1.16/32"})), IsOk());
  EXPECT_EQ(filter_.reads(), reads + 1);
  EXPECT_EQ(SetSize("svc_pg_v4"), 1u);  // .15-.16 merged
}

// Acks lost (ENOBUFS): the commit landed; a re-read shows it and nothing is
// applied twice.
TEST_F(ReconcilerTest, LostAcksAreResolvedByReading) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  filter_.FailNext(StatusCode::kUnknown);
  const int commits = filter_.commits();
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32"})), IsOk());
  EXPECT_EQ(filter_.commits(), commits + 1);
  EXPECT_TRUE(HasRuleFor(*filter_.table(), "svc_pg_v4"));
}

TEST_F(ReconcilerTest, HealthCountsWhatIsInTheKernel) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  clock_.Advance(absl::Seconds(5));
  ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32", "2001:db8:1::/48"})), IsOk());
  FirewallStatus s = rec_.status();
  EXPECT_EQ(s.ipv4_intervals, 3u);  // mgmt, peer, service
  EXPECT_EQ(s.ipv6_intervals, 2u);  // mgmt, service
  EXPECT_EQ(s.content_hash.size(), 64u);
  EXPECT_EQ(s.last_apply, clock_.Now());
  EXPECT_TRUE(s.error.empty());
}

// threats.md case 37: a foreign table that drops at another priority
// cannot be overridden by our accept; it is found and reported.
TEST_F(ReconcilerTest, ForeignDropsAreReported) {
  ASSERT_THAT(rec_.Restore(), IsOk());
  EXPECT_TRUE(rec_.status().foreign_drops.empty());
  auto watch = filter_.Watch().value();
  (void)watch->Wait(absl::ZeroDuration());
  filter_.SetForeignDrops({"table ip other chain in (hook input, priority -10): policy drop"});
  filter_.ForeignChange([](platform::KernelTable*) {}, /*touches_table=*/false);
  ASSERT_THAT(rec_.OnEvents(watch->Wait(absl::ZeroDuration()).value()), IsOk());
  ASSERT_EQ(rec_.status().foreign_drops.size(), 1u);
  filter_.SetForeignDrops({});
  ASSERT_THAT(rec_.Verify("periodic read-back"), IsOk());
  EXPECT_TRUE(rec_.status().foreign_drops.empty());
}

}  // namespace
}  // namespace nodeward::firewall
