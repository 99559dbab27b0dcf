// Health tells the truth about what the agent manages: a lost volume key, a
// failed volume, a firewall out of sync or undercut by another table make
// the report DEGRADED with a reason that says which.
#include "agent/server/status_report.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace nodeward {
namespace {

nodeward::v1::VolumeStatus Volume(const std::string& id, nodeward::v1::VolumeStatus::State s) {
  nodeward::v1::VolumeStatus v;
  v.set_volume_id(id);
  v.set_state(s);
  v.set_reason("why");
  return v;
}

bool HasReason(const nodeward::v1::HealthReport& r, const std::string& prefix) {
  for (const auto& d : r.degraded_reasons()) {
    if (absl::StartsWith(d, prefix)) return true;
  }
  return false;
}

TEST(StatusReportTest, HealthyVolumesAndFirewallServe) {
  AgentInfo info;
  info.volumes_enabled = true;
  info.volumes = {Volume("a", nodeward::v1::VolumeStatus::ACTIVE)};
  info.firewall_enabled = true;
  info.firewall.content_hash = "abc";
  info.firewall.last_apply = absl::FromUnixSeconds(100);
  auto r = BuildHealthReport(info, ProcessorStats{}, absl::FromUnixSeconds(200));
  EXPECT_EQ(r.state(), nodeward::v1::HealthReport::SERVING);
  ASSERT_EQ(r.volumes_size(), 1);
  EXPECT_EQ(r.firewall_content_hash(), "abc");
  EXPECT_EQ(r.firewall_last_apply().seconds(), 100);
  EXPECT_FALSE(r.has_firewall_last_verified());  // never verified: not a fake time
}

TEST(StatusReportTest, LostKeysFailuresAndFirewallTroubleDegrade) {
  AgentInfo info;
  info.volumes_enabled = true;
  info.volumes = {Volume("a", nodeward::v1::VolumeStatus::KEY_LOST),
                  Volume("b", nodeward::v1::VolumeStatus::FAILED)};
  info.firewall_enabled = true;
  info.firewall.error = "read back: EPERM";
  info.firewall.foreign_drops = {"table ip other chain early (hook input, priority -10): policy drop"};
  auto r = BuildHealthReport(info, ProcessorStats{}, absl::Now());
  EXPECT_EQ(r.state(), nodeward::v1::HealthReport::DEGRADED);
  EXPECT_TRUE(HasReason(r, "VOLUME_KEY_LOST: a"));
  EXPECT_TRUE(HasReason(r, "VOLUME_FAILED: b"));
  EXPECT_TRUE(HasReason(r, "FIREWALL_OUT_OF_SYNC"));
  EXPECT_TRUE(HasReason(r, "FIREWALL_FOREIGN_DROP: table ip other"));
  auto s = BuildStatusReport(info, ProcessorStats{}, absl::Now());
  EXPECT_EQ(s.state(), "DEGRADED");
  EXPECT_EQ(s.volumes_size(), 2);
  EXPECT_EQ(s.firewall_foreign_drops_size(), 1);
}

}  // namespace
}  // namespace nodeward
