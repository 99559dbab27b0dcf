// The condition rules (docs/health.md): each fault the agent can see maps to
// its typed condition, severity and state; SERVING needs every enabled
// capability verified; `since` stays while a condition holds.
#include "agent/server/status_report.h"

#include "gtest/gtest.h"

namespace nodeward {
namespace {

using nodeward::v1::Condition;
using nodeward::v1::HealthReport;

const absl::Time kNow = absl::FromUnixSeconds(1000);

nodeward::v1::VolumeStatus Volume(const std::string& id, nodeward::v1::VolumeStatus::State s) {
  nodeward::v1::VolumeStatus v;
  v.set_volume_id(id);
  v.set_state(s);
  v.set_reason("why");
  return v;
}

// A node with every capability enabled and verified a moment ago.
AgentInfo Healthy() {
  AgentInfo info;
  info.volumes_enabled = true;
  info.volumes = {Volume("a", nodeward::v1::VolumeStatus::ACTIVE)};
  info.firewall_enabled = true;
  info.firewall.content_hash = "abc";
  info.firewall.last_apply = kNow - absl::Seconds(100);
  info.firewall.last_verified = kNow - absl::Seconds(5);
  info.signing_key_id = "k";
  nodeward::v1::HostHealth& h = info.host;
  h.mutable_sampled_at()->set_seconds(1000);
  h.set_memory_total_bytes(8ull << 30);
  h.set_memory_available_bytes(4ull << 30);
  h.set_clock_synchronised(true);
  auto* d = h.add_disks();
  d->set_path("/var/lib/nodeward");
  d->set_role("state_dir");
  d->set_total_bytes(10ull << 30);
  d->set_available_bytes(5ull << 30);
  return info;
}

const Condition* Find(const HealthReport& r, Condition::Type t) {
  for (const auto& c : r.conditions()) {
    if (c.type() == t) return &c;
  }
  return nullptr;
}

TEST(HealthConditionsTest, HealthyNodeServesWithNoCondition) {
  HealthReport r = BuildHealthReport(Healthy(), ProcessorStats{}, kNow);
  EXPECT_EQ(r.state(), HealthReport::SERVING);
  EXPECT_TRUE(r.accepting_commands());
  EXPECT_EQ(r.conditions_size(), 0) << r.conditions(0).message();
  EXPECT_EQ(r.firewall().content_hash(), "abc");
  EXPECT_EQ(r.firewall().last_apply().seconds(), 900);
  EXPECT_EQ(r.wipe().state(), nodeward::v1::WipeHealth::NOT_WIPED);
  ASSERT_EQ(r.host().disks_size(), 1);
}

// Each injectable fault: its condition, its severity, the state it leads to.
struct Fault {
  const char* name;
  void (*inject)(AgentInfo*, ProcessorStats*);
  Condition::Type type;
  Condition::Severity severity;
  HealthReport::State state;
};

const Fault kFaults[] = {
    {"ledger", [](AgentInfo*, ProcessorStats* s) { s->state_error = "journal: EIO"; },
     Condition::STATE_UNAVAILABLE, Condition::CRITICAL, HealthReport::NOT_ACCEPTING},
    {"audit", [](AgentInfo*, ProcessorStats* s) { s->audit_error = "ENOSPC"; },
     Condition::AUDIT_UNAVAILABLE, Condition::CRITICAL, HealthReport::NOT_ACCEPTING},
    {"listener", [](AgentInfo* i, ProcessorStats*) { i->listener_down = "3 probes failed"; },
     Condition::LISTENER_DOWN, Condition::CRITICAL, HealthReport::NOT_ACCEPTING},
    {"draining", [](AgentInfo*, ProcessorStats* s) { s->draining = true; }, Condition::DRAINING,
     Condition::INFO, HealthReport::STOPPING},
    {"reload", [](AgentInfo* i, ProcessorStats*) { i->last_reload_error = "bad key"; },
     Condition::TRUST_RELOAD_FAILED, Condition::WARNING, HealthReport::DEGRADED},
    {"firewall error", [](AgentInfo* i, ProcessorStats*) { i->firewall.error = "EPERM"; },
     Condition::FIREWALL_OUT_OF_SYNC, Condition::CRITICAL, HealthReport::DEGRADED},
    {"foreign drop",
     [](AgentInfo* i, ProcessorStats*) { i->firewall.foreign_drops = {"table ip other: drop"}; },
     Condition::FIREWALL_FOREIGN_DROP, Condition::WARNING, HealthReport::DEGRADED},
    {"never verified",
     [](AgentInfo* i, ProcessorStats*) { i->firewall.last_verified = absl::InfinitePast(); },
     Condition::FIREWALL_NOT_VERIFIED, Condition::WARNING, HealthReport::DEGRADED},
    {"verified long ago",
     [](AgentInfo* i, ProcessorStats*) { i->firewall.last_verified = kNow - absl::Seconds(91); },
     Condition::FIREWALL_NOT_VERIFIED, Condition::WARNING, HealthReport::DEGRADED},
    {"awaiting confirmation",
     [](AgentInfo* i, ProcessorStats*) { i->firewall.awaiting_confirmation = true; },
     Condition::FIREWALL_AWAITING_CONFIRMATION, Condition::INFO, HealthReport::SERVING},
    {"key lost",
     [](AgentInfo* i, ProcessorStats*) {
       i->volumes.push_back(Volume("b", nodeward::v1::VolumeStatus::KEY_LOST));
     },
     Condition::VOLUME_KEY_LOST, Condition::CRITICAL, HealthReport::DEGRADED},
    {"volume failed",
     [](AgentInfo* i, ProcessorStats*) {
       i->volumes.push_back(Volume("b", nodeward::v1::VolumeStatus::FAILED));
     },
     Condition::VOLUME_FAILED, Condition::CRITICAL, HealthReport::DEGRADED},
    {"wipe incomplete",
     [](AgentInfo* i, ProcessorStats*) {
       i->wipe = "started, not finished";
       i->wipe_incomplete = true;
     },
     Condition::WIPE_INCOMPLETE, Condition::CRITICAL, HealthReport::DEGRADED},
    {"wiped", [](AgentInfo* i, ProcessorStats*) { i->wipe = "complete at 2026-12-01T00:00:00Z"; },
     Condition::WIPED, Condition::INFO, HealthReport::SERVING},
    {"disk percent",
     [](AgentInfo* i, ProcessorStats*) {
       i->host.mutable_disks(0)->set_available_bytes((10ull << 30) / 25);  // 4%
     },
     Condition::DISK_SPACE_LOW, Condition::WARNING, HealthReport::DEGRADED},
    {"disk bytes",
     [](AgentInfo* i, ProcessorStats*) {
       i->host.mutable_disks(0)->set_total_bytes(1ull << 30);
       i->host.mutable_disks(0)->set_available_bytes(200ull << 20);  // 20%, < 256 MiB
     },
     Condition::DISK_SPACE_LOW, Condition::WARNING, HealthReport::DEGRADED},
    {"memory", [](AgentInfo* i, ProcessorStats*) { i->host.set_memory_available_bytes(1u << 20); },
     Condition::MEMORY_LOW, Condition::WARNING, HealthReport::DEGRADED},
    {"clock", [](AgentInfo* i, ProcessorStats*) { i->host.set_clock_synchronised(false); },
     Condition::CLOCK_UNSYNCHRONISED, Condition::INFO, HealthReport::SERVING},
    {"host probe", [](AgentInfo* i, ProcessorStats*) { i->host_error = "sysinfo: EPERM"; },
     Condition::HOST_PROBE_FAILED, Condition::INFO, HealthReport::SERVING},
    {"startup: memory not locked",
     [](AgentInfo* i, ProcessorStats*) {
       Condition c;
       c.set_type(Condition::MEMORY_NOT_LOCKED);
       c.set_message("mlockall: EPERM");
       i->startup_conditions.push_back(c);
     },
     Condition::MEMORY_NOT_LOCKED, Condition::WARNING, HealthReport::DEGRADED},
    {"startup: firewall state lost",
     [](AgentInfo* i, ProcessorStats*) {
       Condition c;
       c.set_type(Condition::FIREWALL_STATE_LOST);
       i->startup_conditions.push_back(c);
     },
     Condition::FIREWALL_STATE_LOST, Condition::CRITICAL, HealthReport::DEGRADED},
    {"startup: signing key",
     [](AgentInfo* i, ProcessorStats*) {
       Condition c;
       c.set_type(Condition::SIGNING_KEY_UNAVAILABLE);
       i->startup_conditions.push_back(c);
     },
     Condition::SIGNING_KEY_UNAVAILABLE, Condition::WARNING, HealthReport::DEGRADED},
};

TEST(HealthConditionsTest, EachFaultMapsToItsCondition) {
  for (const Fault& f : kFaults) {
    SCOPED_TRACE(f.name);
    AgentInfo info = Healthy();
    ProcessorStats stats;
    f.inject(&info, &stats);
    HealthReport r = BuildHealthReport(info, stats, kNow);
    const Condition* c = Find(r, f.type);
    ASSERT_NE(c, nullptr) << Condition::Type_Name(f.type);
    EXPECT_EQ(c->severity(), f.severity);
    EXPECT_EQ(r.state(), f.state);
    EXPECT_EQ(r.accepting_commands(),
              f.state == HealthReport::SERVING || f.state == HealthReport::DEGRADED);
    EXPECT_EQ(c->blocks_commands(), f.state == HealthReport::NOT_ACCEPTING ||
                                        f.state == HealthReport::STOPPING);
  }
}

TEST(HealthConditionsTest, ClockSyncCanBeRequired) {
  AgentInfo info = Healthy();
  info.host.set_clock_synchronised(false);
  nodeward::v1::HealthConfig c;
  c.set_require_clock_sync(true);
  HealthReport r = BuildHealthReport(info, ProcessorStats{}, kNow, ToHealthPolicy(c, 30));
  EXPECT_EQ(r.state(), HealthReport::DEGRADED);
  EXPECT_EQ(Find(r, Condition::CLOCK_UNSYNCHRONISED)->severity(), Condition::WARNING);
}

TEST(HealthConditionsTest, MostSevereFirstAndOnePerSubject) {
  AgentInfo info = Healthy();
  info.firewall.awaiting_confirmation = true;  // INFO
  info.volumes.push_back(Volume("b", nodeward::v1::VolumeStatus::KEY_LOST));
  info.volumes.push_back(Volume("c", nodeward::v1::VolumeStatus::KEY_LOST));
  ProcessorStats stats;
  stats.audit_error = "audit log not open";
  Condition dup;
  dup.set_type(Condition::AUDIT_UNAVAILABLE);  // also found at startup
  info.startup_conditions.push_back(dup);
  HealthReport r = BuildHealthReport(info, stats, kNow);
  ASSERT_EQ(r.conditions_size(), 4);
  EXPECT_EQ(r.conditions(0).type(), Condition::AUDIT_UNAVAILABLE);
  EXPECT_EQ(r.conditions(1).subject(), "b");
  EXPECT_EQ(r.conditions(2).subject(), "c");
  EXPECT_EQ(r.conditions(3).type(), Condition::FIREWALL_AWAITING_CONFIRMATION);
  EXPECT_EQ(r.state(), HealthReport::NOT_ACCEPTING);
}

TEST(HealthConditionsTest, SinceStaysWhileTheConditionHolds) {
  ConditionTracker tracker;
  AgentInfo info = Healthy();
  info.last_reload_error = "bad key";
  HealthReport a = BuildHealthReport(info, ProcessorStats{}, kNow, {}, &tracker);
  HealthReport b =
      BuildHealthReport(info, ProcessorStats{}, kNow + absl::Seconds(30), {}, &tracker);
  EXPECT_EQ(a.conditions(0).since().seconds(), 1000);
  EXPECT_EQ(b.conditions(0).since().seconds(), 1000);
  info.last_reload_error.clear();
  EXPECT_EQ(BuildHealthReport(info, ProcessorStats{}, kNow + absl::Seconds(40), {}, &tracker)
                .conditions_size(),
            0);
  info.last_reload_error = "again";
  HealthReport c =
      BuildHealthReport(info, ProcessorStats{}, kNow + absl::Seconds(50), {}, &tracker);
  EXPECT_EQ(c.conditions(0).since().seconds(), 1050);  // came back: a new since
}

TEST(HealthConditionsTest, DisabledCapabilitiesNeedNoVerification) {
  AgentInfo info = Healthy();
  info.firewall_enabled = false;
  info.firewall.last_verified = absl::InfinitePast();
  HealthReport r = BuildHealthReport(info, ProcessorStats{}, kNow);
  EXPECT_EQ(r.state(), HealthReport::SERVING);
  EXPECT_FALSE(r.firewall().enabled());
  EXPECT_FALSE(r.firewall().has_last_verified());  // never verified: not a fake time
}

TEST(HealthConditionsTest, StatusCarriesTheSameHealth) {
  AgentInfo info = Healthy();
  info.volumes.push_back(Volume("b", nodeward::v1::VolumeStatus::KEY_LOST));
  info.listen_address = "127.0.0.1:7443";
  info.started_at = kNow - absl::Seconds(60);
  nodeward::v1::StatusReport s = BuildStatusReport(info, ProcessorStats{}, kNow);
  EXPECT_EQ(s.health().state(), HealthReport::DEGRADED);
  EXPECT_EQ(s.health().volumes_size(), 2);
  EXPECT_EQ(s.uptime_seconds(), 60);
  EXPECT_EQ(s.listen_address(), "127.0.0.1:7443");
}

}  // namespace
}  // namespace nodeward
