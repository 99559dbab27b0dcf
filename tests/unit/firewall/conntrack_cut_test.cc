// Tracked connections the desired state forbids are cut (Hardening II point
// 13), on fakes: after a drift repair always; on an ApplyFirewall only when
// it asks; outbound, loopback and allowed connections never; a failed cut is
// reported and retried; a deleted table is re-created without a read-back.
#include "agent/firewall/firewall_reconciler.h"

#include <netinet/in.h>

#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_conntrack.h"
#include "tests/fakes/fake_file_system.h"
#include "tests/fakes/fake_packet_filter.h"

namespace nodeward::firewall {
namespace {

using testing::IsOk;

constexpr absl::uint128 V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return (absl::uint128(a) << 24) | (b << 16) | (c << 8) | d;
}
const absl::uint128 kVm = V4(10, 0, 0, 5);

platform::ConnEntry Tcp(absl::uint128 src, uint16_t dport, bool inbound = true) {
  platform::ConnEntry e;
  e.protocol = IPPROTO_TCP;
  e.src = inbound ? src : kVm;
  e.dst = inbound ? kVm : src;
  e.sport = 40000;
  e.dport = dport;
  e.inbound = inbound;
  return e;
}

VerifiedCommand Cmd(uint64_t generation, std::vector<std::string> cidrs, bool cut) {
  VerifiedCommand v;
  auto* a = v.command.mutable_apply_firewall();
  a->set_generation(generation);
  a->set_cut_forbidden_connections(cut);
  auto* s = a->add_services();
  s->set_name("pg");
  s->set_protocol(nodeward::v1::PROTOCOL_TCP);
  s->add_ports()->set_first(5432);
  for (const auto& c : cidrs) s->add_allowed_cidrs(c);
  v.command_type = "apply_firewall";
  return v;
}

class ConntrackCutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rec_.set_conntrack(&ct_);
    ASSERT_THAT(rec_.Restore(), IsOk());
    ASSERT_THAT(rec_.Apply(Cmd(1, {"192.168.1.15/32", "192.168.1.16/32"}, false)), IsOk());
    ct_.Add(Tcp(V4(192, 168, 1, 15), 5432));       // allowed
    ct_.Add(Tcp(V4(198, 51, 100, 7), 5432));       // never allowed
    ct_.Add(Tcp(V4(203, 0, 113, 9), 22));          // management
    ct_.Add(Tcp(V4(198, 51, 100, 7), 443, false));  // the VM's own outbound connection
  }
  bool Has(absl::uint128 src, uint16_t dport) const {
    for (const auto& e : ct_.entries()) {
      if ((e.inbound ? e.src : e.dst) == src && e.dport == dport) return true;
    }
    return false;
  }
  platform::FakePacketFilter filter_;
  platform::FakeFileSystem fs_;
  platform::FakeClock clock_;
  platform::FakeConntrack ct_;
  FirewallReconciler rec_{&filter_, &fs_, &clock_, "/state/firewall.pb",
                          {{ParseCidr("203.0.113.0/24").value()}, {7443, 22}}};
};

TEST_F(ConntrackCutTest, DriftRepairCutsWhatGotInWhileTheTableWasMissing) {
  filter_.ForeignChange([](platform::KernelTable* t) {
    t->exists = false;
    t->ruleset = {};
  });
  ASSERT_THAT(rec_.Verify("periodic read-back"), IsOk());
  EXPECT_FALSE(Has(V4(198, 51, 100, 7), 5432)) << "a never-allowed source survived the repair";
  EXPECT_TRUE(Has(V4(192, 168, 1, 15), 5432));
  EXPECT_TRUE(Has(V4(203, 0, 113, 9), 22));
  EXPECT_TRUE(Has(V4(198, 51, 100, 7), 443)) << "the VM's own outbound connection was cut";
  EXPECT_EQ(rec_.status().connections_cut, 1u);
  EXPECT_NE(rec_.status().last_cut.find("after repairing drift"), std::string::npos)
      << rec_.status().last_cut;
}

TEST_F(ConntrackCutTest, ApplyCutsRemovedSourcesOnlyWhenAsked) {
  ct_.Add(Tcp(V4(192, 168, 1, 16), 5432));
  // .16 removed, not asked to cut: its connection stays (it may only not
  // establish a new one).
  ASSERT_THAT(rec_.Apply(Cmd(2, {"192.168.1.15/32"}, false)), IsOk());
  EXPECT_TRUE(Has(V4(192, 168, 1, 16), 5432));
  EXPECT_EQ(ct_.deletes(), 0);
  // Asked: .16 and the never-allowed one go; the rest stays.
  auto r = rec_.Apply(Cmd(3, {"192.168.1.15/32"}, true));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->firewall().connections_cut(), 2u);
  EXPECT_FALSE(Has(V4(192, 168, 1, 16), 5432));
  EXPECT_FALSE(Has(V4(198, 51, 100, 7), 5432));
  EXPECT_TRUE(Has(V4(192, 168, 1, 15), 5432));
  EXPECT_TRUE(Has(V4(203, 0, 113, 9), 22));
  EXPECT_TRUE(Has(V4(198, 51, 100, 7), 443));
}

TEST_F(ConntrackCutTest, AFailedCutIsReportedAndRetried) {
  ct_.FailList(absl::UnavailableError("ctnetlink: no such module"));
  filter_.ForeignChange([](platform::KernelTable* t) {
    t->exists = false;
    t->ruleset = {};
  });
  EXPECT_FALSE(rec_.Verify("periodic read-back").ok());
  EXPECT_NE(rec_.status().error.find("cut forbidden connections"), std::string::npos)
      << rec_.status().error;
  EXPECT_TRUE(filter_.table().has_value()) << "the table itself was repaired";
  // Next periodic verify: no drift any more, but the cut is still owed.
  ct_.FailList(std::nullopt);
  ASSERT_THAT(rec_.Verify("periodic read-back"), IsOk());
  EXPECT_FALSE(Has(V4(198, 51, 100, 7), 5432));
  EXPECT_TRUE(rec_.status().error.empty()) << rec_.status().error;
}

TEST_F(ConntrackCutTest, ADeletedTableIsRecreatedFromTheEventWithoutAReadBack) {
  auto watch = filter_.Watch().value();
  (void)watch->Wait(absl::ZeroDuration());
  const int reads = filter_.reads();
  const int commits = filter_.commits();
  filter_.ForeignChange([](platform::KernelTable* t) {
    t->exists = false;
    t->ruleset = {};
  });
  ASSERT_THAT(rec_.OnEvents(watch->Wait(absl::ZeroDuration()).value()), IsOk());
  EXPECT_EQ(filter_.reads(), reads) << "the repair read the (deleted) table back first";
  // Closed first by the small baseline, then the allow-lists added.
  EXPECT_EQ(filter_.commits(), commits + 2);
  EXPECT_NE(rec_.status().last_drift.find("closed by the baseline"), std::string::npos)
      << rec_.status().last_drift;
  ASSERT_TRUE(filter_.table().has_value());
  EXPECT_EQ(rec_.status().drift_repairs, 1u);
  EXPECT_FALSE(Has(V4(198, 51, 100, 7), 5432));
}

}  // namespace
}  // namespace nodeward::firewall
