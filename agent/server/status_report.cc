#include "agent/server/status_report.h"

#include "absl/strings/str_cat.h"
#include "agent/common/time_util.h"

namespace nodeward {
namespace {

std::vector<std::string> Reasons(const AgentInfo& info, const ProcessorStats& stats) {
  std::vector<std::string> out = info.startup_problems;
  if (!info.listener_down.empty()) out.push_back("LISTENER_DOWN: " + info.listener_down);
  if (info.firewall_enabled && !info.firewall.error.empty()) {
    out.push_back("FIREWALL_OUT_OF_SYNC: " + info.firewall.error);
  }
  for (const auto& v : info.volumes) {
    if (v.state() == nodeward::v1::VolumeStatus::KEY_LOST) {
      out.push_back(absl::StrCat("VOLUME_KEY_LOST: ", v.volume_id(), " (", v.reason(), ")"));
    } else if (v.state() != nodeward::v1::VolumeStatus::ACTIVE &&
               v.state() != nodeward::v1::VolumeStatus::WIPED) {
      out.push_back(absl::StrCat("VOLUME_FAILED: ", v.volume_id(), " (", v.reason(), ")"));
    }
  }
  if (info.wipe_incomplete) out.push_back("WIPE_INCOMPLETE: " + info.wipe);
  if (info.firewall_enabled) {
    for (const std::string& d : info.firewall.foreign_drops) {
      out.push_back("FIREWALL_FOREIGN_DROP: " + d);
    }
  }
  out.insert(out.end(), stats.degraded_reasons.begin(), stats.degraded_reasons.end());
  return out;
}

// The same firewall fields exist in both reports.
template <typename Report>
void SetFirewall(const AgentInfo& info, Report* r) {
  r->set_firewall_enabled(info.firewall_enabled);
  if (!info.firewall_enabled) return;
  const firewall::FirewallStatus& f = info.firewall;
  r->set_firewall_generation(f.generation);
  r->set_firewall_highest_generation(f.highest_generation);
  r->set_firewall_awaiting_confirmation(f.awaiting_confirmation);
  r->set_firewall_rollbacks(f.rollbacks);
  r->set_firewall_content_hash(f.content_hash);
  r->set_firewall_ipv4_intervals(f.ipv4_intervals);
  r->set_firewall_ipv6_intervals(f.ipv6_intervals);
  r->set_firewall_drift_repairs(f.drift_repairs);
  r->set_firewall_last_drift(f.last_drift);
  if (f.last_apply != absl::InfinitePast()) *r->mutable_firewall_last_apply() = ToTimestamp(f.last_apply);
  if (f.last_verified != absl::InfinitePast()) {
    *r->mutable_firewall_last_verified() = ToTimestamp(f.last_verified);
  }
  r->set_firewall_error(f.error);
  for (const std::string& d : f.foreign_drops) r->add_firewall_foreign_drops(d);
  r->set_firewall_connections_cut(f.connections_cut);
  r->set_firewall_last_cut(f.last_cut);
}

}  // namespace

nodeward::v1::HealthReport BuildHealthReport(const AgentInfo& info, const ProcessorStats& stats,
                                             absl::Time now) {
  nodeward::v1::HealthReport r;
  r.set_node_id(info.node_id);
  r.set_boot_id(info.boot_id);
  r.set_version(info.version);
  std::vector<std::string> reasons = Reasons(info, stats);
  if (stats.draining) {
    r.set_state(nodeward::v1::HealthReport::STOPPING);
  } else if (!reasons.empty()) {
    r.set_state(nodeward::v1::HealthReport::DEGRADED);
  } else {
    r.set_state(nodeward::v1::HealthReport::SERVING);
  }
  for (const auto& s : reasons) r.add_degraded_reasons(s);
  *r.mutable_time() = ToTimestamp(now);
  *r.mutable_started_at() = ToTimestamp(info.started_at);
  r.set_high_water_mark(stats.high_water_mark);
  r.set_commands_applied(stats.applied);
  r.set_commands_rejected(stats.rejected);
  r.set_commands_replayed(stats.replayed);
  SetFirewall(info, &r);
  for (const auto& v : info.volumes) *r.add_volumes() = v;
  r.set_wipe(info.wipe);
  r.set_signing_public_key(info.signing_public_key);
  r.set_signing_key_id(info.signing_key_id);
  return r;
}

nodeward::v1::StatusReport BuildStatusReport(const AgentInfo& info, const ProcessorStats& stats,
                                             absl::Time now) {
  nodeward::v1::HealthReport h = BuildHealthReport(info, stats, now);
  nodeward::v1::StatusReport r;
  r.set_version(info.version);
  r.set_node_id(info.node_id);
  r.set_boot_id(info.boot_id);
  *r.mutable_started_at() = ToTimestamp(info.started_at);
  r.set_uptime_seconds(absl::ToInt64Seconds(now - info.started_at));
  r.set_listen_address(info.listen_address);
  r.set_state(nodeward::v1::HealthReport::State_Name(h.state()));
  for (const auto& s : h.degraded_reasons()) r.add_degraded_reasons(s);
  r.set_high_water_mark(stats.high_water_mark);
  r.set_commands_applied(stats.applied);
  r.set_commands_rejected(stats.rejected);
  r.set_commands_replayed(stats.replayed);
  r.set_trusted_keys(info.trusted_keys);
  *r.mutable_trust_loaded_at() = ToTimestamp(info.trust_loaded_at);
  r.set_last_reload_error(info.last_reload_error);
  for (const auto& c : stats.recent) *r.add_recent_commands() = c;
  SetFirewall(info, &r);
  r.set_firewall_last_rollback(info.firewall.last_rollback);
  for (const auto& v : info.volumes) *r.add_volumes() = v;
  r.set_wipe(info.wipe);
  r.set_signing_public_key(info.signing_public_key);
  r.set_signing_key_id(info.signing_key_id);
  return r;
}

}  // namespace nodeward
