#include "agent/server/status_report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/common/time_util.h"

namespace nodeward {
namespace {

using nodeward::v1::Condition;

void AddHostConditions(const AgentInfo& info, absl::Time now, const HealthPolicy& p,
                       std::vector<Condition>* out) {
  auto add = [&](Condition::Type t, std::string subject, std::string message) {
    out->push_back(MakeCondition(t, std::move(subject), std::move(message), p));
  };
  if (info.clock_stepped_at != absl::InfinitePast() &&
      now - info.clock_stepped_at < kClockStepShownFor) {
    add(Condition::CLOCK_STEPPED, "",
        absl::StrCat("the wall clock was stepped by ",
                     absl::StrFormat("%+.3f", absl::ToDoubleSeconds(info.clock_step)), " s at ",
                     absl::FormatTime(info.clock_stepped_at),
                     "; certificate horizons and command windows were recomputed"));
  }
  if (!info.host_error.empty()) add(Condition::HOST_PROBE_FAILED, "", info.host_error);
  const nodeward::v1::HostHealth& h = info.host;
  if (!h.has_sampled_at()) return;
  if (info.host_error.find("adjtimex") == std::string::npos && !h.clock_synchronised()) {
    add(Condition::CLOCK_UNSYNCHRONISED, "",
        absl::StrCat("the kernel reports the clock unsynchronised (max error ",
                     h.clock_max_error_us(), " us)"));
  }
  if (h.memory_total_bytes() > 0 &&
      h.memory_available_bytes() * 100 < h.memory_total_bytes() * p.min_available_memory_percent) {
    add(Condition::MEMORY_LOW, "",
        absl::StrCat(h.memory_available_bytes() >> 20, " MiB of ", h.memory_total_bytes() >> 20,
                     " MiB available"));
  }
  for (const nodeward::v1::DiskSpace& d : h.disks()) {
    if (d.total_bytes() == 0) continue;
    if (d.available_bytes() * 100 < d.total_bytes() * p.min_free_disk_percent ||
        d.available_bytes() < p.min_free_disk_bytes) {
      add(Condition::DISK_SPACE_LOW, d.path(),
          absl::StrCat(d.role(), " ", d.path(), ": ", d.available_bytes() >> 20, " MiB of ",
                       d.total_bytes() >> 20, " MiB available"));
    }
  }
}

void AddFirewallConditions(const AgentInfo& info, absl::Time now, const HealthPolicy& p,
                           std::vector<Condition>* out) {
  if (!info.firewall_enabled) return;
  const firewall::FirewallStatus& f = info.firewall;
  auto add = [&](Condition::Type t, std::string subject, std::string message) {
    out->push_back(MakeCondition(t, std::move(subject), std::move(message), p));
  };
  if (!f.error.empty()) add(Condition::FIREWALL_OUT_OF_SYNC, "", f.error);
  for (const std::string& d : f.foreign_drops) add(Condition::FIREWALL_FOREIGN_DROP, d, d);
  if (f.last_verified == absl::InfinitePast()) {
    add(Condition::FIREWALL_NOT_VERIFIED, "", "the kernel table was never read back");
  } else if (now - f.last_verified > p.firewall_verify_max_age) {
    add(Condition::FIREWALL_NOT_VERIFIED, "",
        absl::StrCat("last read back ", absl::FormatDuration(absl::Trunc(now - f.last_verified,
                                                                          absl::Seconds(1))),
                     " ago (more than ", absl::FormatDuration(p.firewall_verify_max_age), ")"));
  }
  if (f.awaiting_confirmation) {
    add(Condition::FIREWALL_AWAITING_CONFIRMATION, "",
        absl::StrCat("generation ", f.generation, " rolls back unless confirmed"));
  }
}

void FillFirewall(const AgentInfo& info, nodeward::v1::FirewallHealth* r) {
  r->set_enabled(info.firewall_enabled);
  if (!info.firewall_enabled) return;
  const firewall::FirewallStatus& f = info.firewall;
  r->set_generation(f.generation);
  r->set_highest_generation(f.highest_generation);
  r->set_awaiting_confirmation(f.awaiting_confirmation);
  r->set_rollbacks(f.rollbacks);
  r->set_last_rollback(f.last_rollback);
  r->set_content_hash(f.content_hash);
  r->set_ipv4_intervals(f.ipv4_intervals);
  r->set_ipv6_intervals(f.ipv6_intervals);
  r->set_drift_repairs(f.drift_repairs);
  r->set_last_drift(f.last_drift);
  if (f.last_apply != absl::InfinitePast()) *r->mutable_last_apply() = ToTimestamp(f.last_apply);
  if (f.last_verified != absl::InfinitePast()) {
    *r->mutable_last_verified() = ToTimestamp(f.last_verified);
  }
  r->set_error(f.error);
  for (const std::string& d : f.foreign_drops) r->add_foreign_drops(d);
  r->set_connections_cut(f.connections_cut);
  r->set_last_cut(f.last_cut);
}

}  // namespace

std::vector<Condition> EvaluateConditions(const AgentInfo& info, const ProcessorStats& stats,
                                          absl::Time now, const HealthPolicy& p) {
  std::vector<Condition> out;
  auto add = [&](Condition::Type t, std::string subject, std::string message) {
    out.push_back(MakeCondition(t, std::move(subject), std::move(message), p));
  };
  for (const Condition& c : info.startup_conditions) add(c.type(), c.subject(), c.message());
  if (stats.draining) add(Condition::DRAINING, "", "the agent is shutting down");
  if (!stats.state_error.empty()) add(Condition::STATE_UNAVAILABLE, "", stats.state_error);
  if (!stats.audit_error.empty()) add(Condition::AUDIT_UNAVAILABLE, "", stats.audit_error);
  if (!info.listener_down.empty()) add(Condition::LISTENER_DOWN, "", info.listener_down);
  if (!info.last_reload_error.empty()) {
    add(Condition::TRUST_RELOAD_FAILED, "", info.last_reload_error);
  }
  AddFirewallConditions(info, now, p, &out);
  for (const auto& v : info.volumes) {
    if (v.state() == nodeward::v1::VolumeStatus::KEY_LOST) {
      add(Condition::VOLUME_KEY_LOST, v.volume_id(), v.reason());
    } else if (v.state() != nodeward::v1::VolumeStatus::ACTIVE &&
               v.state() != nodeward::v1::VolumeStatus::WIPED) {
      add(Condition::VOLUME_FAILED, v.volume_id(), v.reason());
    }
  }
  if (info.wipe_incomplete) {
    add(Condition::WIPE_INCOMPLETE, "", info.wipe);
  } else if (!info.wipe.empty()) {
    add(Condition::WIPED, "", info.wipe);
  }
  for (const auto& c : info.certificates) {
    const std::string until =
        absl::StrCat("not after ", absl::FormatTime(absl::RFC3339_sec, FromTimestamp(c.not_after()),
                                                    absl::UTCTimeZone()));
    switch (c.state()) {
      case nodeward::v1::CertificateHealth::RENEWAL_DUE:
        add(Condition::CERTIFICATE_RENEWAL_DUE, c.target(), until);
        break;
      case nodeward::v1::CertificateHealth::EXPIRING:
        add(Condition::CERTIFICATE_EXPIRING, c.target(), until);
        break;
      case nodeward::v1::CertificateHealth::EXPIRED:
        add(Condition::CERTIFICATE_EXPIRED, c.target(), until);
        break;
      case nodeward::v1::CertificateHealth::INVALID:
        add(Condition::CERTIFICATE_INVALID, c.target(), c.error());
        break;
      case nodeward::v1::CertificateHealth::RELOAD_FAILED:
        add(Condition::CERTIFICATE_RELOAD_FAILED, c.target(), c.reload_error());
        break;
      default:
        break;
    }
  }
  for (const nodeward::v1::AccessSession& u : info.access.unauthorised()) {
    if (u.service() == "authorized_keys") {
      add(Condition::ACCESS_KEYS_TAMPERED, u.session_id(),
          absl::StrCat("event ", u.event(), ": ", u.reason()));
    } else {
      add(Condition::UNAUTHORISED_ACCESS, u.session_id(),
          absl::StrCat("event ", u.event(), ": ", u.user(), " logged in via ",
                       u.service().empty() ? "?" : u.service(), " from ",
                       u.remote_host().empty() ? "local" : u.remote_host(), " at ",
                       absl::FormatTime(FromTimestamp(u.started_at())), " in no signed window"));
    }
  }
  if (!info.access.error().empty()) add(Condition::ACCESS_WATCH_FAILED, "", info.access.error());
  // The chain against what the orchestrator acknowledged (docs/audit.md);
  // verdict 3 with no chain at all is AUDIT_UNAVAILABLE from startup.
  if (info.audit_verdict == 1) add(Condition::AUDIT_TRUNCATED, "audit", info.audit.error());
  if (info.audit_verdict == 2 || (info.audit_verdict == 3 && info.audit.records() > 0)) {
    add(Condition::AUDIT_DIVERGED, "audit", info.audit.error());
  }
  if (info.audit.backlog_limit() > 0 &&
      info.audit.unacknowledged() * 5 > info.audit.backlog_limit() * 4) {
    add(Condition::AUDIT_BACKLOG, "audit",
        absl::StrCat(info.audit.unacknowledged(), " audit records not acknowledged (limit ",
                     info.audit.backlog_limit(), "); nothing is deleted, the file grows"));
  }
  AddHostConditions(info, now, p, &out);
  return out;
}

nodeward::v1::HealthReport BuildHealthReport(const AgentInfo& info, const ProcessorStats& stats,
                                             absl::Time now, const HealthPolicy& policy,
                                             ConditionTracker* tracker) {
  nodeward::v1::HealthReport r;
  r.set_node_id(info.node_id);
  r.set_boot_id(info.boot_id);
  r.set_version(info.version);
  std::vector<Condition> conditions = EvaluateConditions(info, stats, now, policy);
  Normalise(&conditions);
  if (tracker != nullptr) tracker->Stamp(&conditions, now);
  r.set_state(StateFor(conditions, stats.draining));
  r.set_accepting_commands(r.state() == nodeward::v1::HealthReport::SERVING ||
                           r.state() == nodeward::v1::HealthReport::DEGRADED);
  for (auto& c : conditions) *r.add_conditions() = std::move(c);
  *r.mutable_time() = ToTimestamp(now);
  *r.mutable_started_at() = ToTimestamp(info.started_at);
  auto* cmd = r.mutable_commands();
  cmd->set_high_water_mark(stats.high_water_mark);
  cmd->set_applied(stats.applied);
  cmd->set_rejected(stats.rejected);
  cmd->set_replayed(stats.replayed);
  cmd->set_trusted_keys(info.trusted_keys);
  if (info.trust_loaded_at != absl::Time()) {
    *cmd->mutable_trust_loaded_at() = ToTimestamp(info.trust_loaded_at);
  }
  cmd->set_last_reload_error(info.last_reload_error);
  cmd->set_health_streams(info.health_streams);
  FillFirewall(info, r.mutable_firewall());
  for (const auto& v : info.volumes) *r.add_volumes() = v;
  auto* w = r.mutable_wipe();
  w->set_state(info.wipe_incomplete ? nodeward::v1::WipeHealth::INCOMPLETE
               : info.wipe.empty()  ? nodeward::v1::WipeHealth::NOT_WIPED
                                    : nodeward::v1::WipeHealth::COMPLETE);
  w->set_detail(info.wipe);
  w->set_signing_public_key(info.signing_public_key);
  w->set_signing_key_id(info.signing_key_id);
  *r.mutable_access() = info.access;
  *r.mutable_audit() = info.audit;
  *r.mutable_host() = info.host;
  if (info.clock_stepped_at != absl::InfinitePast()) {
    *r.mutable_host()->mutable_clock_stepped_at() = ToTimestamp(info.clock_stepped_at);
    r.mutable_host()->set_clock_step_seconds(absl::ToDoubleSeconds(info.clock_step));
  }
  r.mutable_host()->set_clock_steps(info.clock_steps);
  for (const auto& c : info.certificates) *r.add_certificates() = c;
  return r;
}

nodeward::v1::StatusReport BuildStatusReport(const AgentInfo& info, const ProcessorStats& stats,
                                             absl::Time now, const HealthPolicy& policy,
                                             ConditionTracker* tracker) {
  nodeward::v1::StatusReport r;
  *r.mutable_health() = BuildHealthReport(info, stats, now, policy, tracker);
  r.set_listen_address(info.listen_address);
  r.set_uptime_seconds(absl::ToInt64Seconds(now - info.started_at));
  for (const auto& c : stats.recent) *r.add_recent_commands() = c;
  return r;
}

}  // namespace nodeward
