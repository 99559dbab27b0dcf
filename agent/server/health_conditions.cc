#include "agent/server/health_conditions.h"

#include <algorithm>
#include <set>

#include "agent/common/time_util.h"

namespace nodeward {
namespace {

using nodeward::v1::Condition;

struct Rule {
  Condition::Severity severity;
  bool blocks;
};

Rule RuleFor(Condition::Type t, const HealthPolicy& policy) {
  switch (t) {
    case Condition::STATE_UNAVAILABLE:
    case Condition::AUDIT_UNAVAILABLE:
    case Condition::LISTENER_DOWN:
      return {Condition::CRITICAL, true};
    case Condition::DRAINING:
      return {Condition::INFO, true};
    case Condition::CERTIFICATE_EXPIRED:
    case Condition::CERTIFICATE_INVALID:
    case Condition::FIREWALL_OUT_OF_SYNC:
    case Condition::FIREWALL_STATE_LOST:
    case Condition::VOLUME_KEY_LOST:
    case Condition::VOLUME_FAILED:
    case Condition::VOLUME_RECORDS_LOST:
    case Condition::WIPE_INCOMPLETE:
    case Condition::WIPE_RECORD_LOST:
    case Condition::UNAUTHORISED_ACCESS:
    case Condition::AUDIT_TRUNCATED:
    case Condition::AUDIT_DIVERGED:
      return {Condition::CRITICAL, false};
    case Condition::ACCESS_KEYS_TAMPERED:
    case Condition::ACCESS_WATCH_FAILED:
    case Condition::AUDIT_BACKLOG:
      return {Condition::WARNING, false};
    case Condition::TRUST_RELOAD_FAILED:
    case Condition::MEMORY_NOT_LOCKED:
    case Condition::SIGNING_KEY_UNAVAILABLE:
    case Condition::FIREWALL_FOREIGN_DROP:
    case Condition::FIREWALL_NOT_VERIFIED:
    case Condition::CERTIFICATE_EXPIRING:
    case Condition::CERTIFICATE_RELOAD_FAILED:
    case Condition::DISK_SPACE_LOW:
    case Condition::MEMORY_LOW:
      return {Condition::WARNING, false};
    case Condition::CLOCK_UNSYNCHRONISED:
      return {policy.require_clock_sync ? Condition::WARNING : Condition::INFO, false};
    case Condition::FIREWALL_AWAITING_CONFIRMATION:
    case Condition::WIPED:
    case Condition::HOST_PROBE_FAILED:
    case Condition::CLOCK_STEPPED:
    case Condition::CERTIFICATE_RENEWAL_DUE:
      return {Condition::INFO, false};
    default:
      return {Condition::WARNING, false};
  }
}

}  // namespace

HealthPolicy ToHealthPolicy(const nodeward::v1::HealthConfig& c,
                            uint32_t firewall_readback_interval_seconds) {
  HealthPolicy p;
  p.require_clock_sync = c.require_clock_sync();
  if (c.min_free_disk_percent() != 0) p.min_free_disk_percent = c.min_free_disk_percent();
  if (c.min_free_disk_mib() != 0) p.min_free_disk_bytes = uint64_t{c.min_free_disk_mib()} << 20;
  if (c.min_available_memory_percent() != 0) {
    p.min_available_memory_percent = c.min_available_memory_percent();
  }
  const uint32_t readback =
      firewall_readback_interval_seconds == 0 ? 30 : firewall_readback_interval_seconds;
  p.firewall_verify_max_age = c.firewall_verify_max_age_seconds() != 0
                                  ? absl::Seconds(c.firewall_verify_max_age_seconds())
                                  : absl::Seconds(3 * readback);
  return p;
}

Condition MakeCondition(Condition::Type type, std::string subject, std::string message,
                        const HealthPolicy& policy) {
  Condition c;
  const Rule r = RuleFor(type, policy);
  c.set_type(type);
  c.set_severity(r.severity);
  c.set_blocks_commands(r.blocks);
  c.set_subject(std::move(subject));
  c.set_message(std::move(message));
  return c;
}

nodeward::v1::HealthReport::State StateFor(const std::vector<Condition>& conditions,
                                           bool draining) {
  if (draining) return nodeward::v1::HealthReport::STOPPING;
  bool degraded = false;
  for (const Condition& c : conditions) {
    if (c.blocks_commands()) return nodeward::v1::HealthReport::NOT_ACCEPTING;
    degraded |= c.severity() >= Condition::WARNING;
  }
  return degraded ? nodeward::v1::HealthReport::DEGRADED : nodeward::v1::HealthReport::SERVING;
}

void Normalise(std::vector<Condition>* conditions) {
  std::stable_sort(conditions->begin(), conditions->end(),
                   [](const Condition& a, const Condition& b) {
                     if (a.severity() != b.severity()) return a.severity() > b.severity();
                     if (a.type() != b.type()) return a.type() < b.type();
                     return a.subject() < b.subject();
                   });
  std::set<std::pair<int, std::string>> seen;
  std::vector<Condition> out;
  for (Condition& c : *conditions) {
    if (seen.insert({c.type(), c.subject()}).second) out.push_back(std::move(c));
  }
  *conditions = std::move(out);
}

void ConditionTracker::Stamp(std::vector<Condition>* conditions, absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::map<std::pair<int, std::string>, absl::Time> next;
  for (Condition& c : *conditions) {
    const auto key = std::make_pair(static_cast<int>(c.type()), c.subject());
    auto it = since_.find(key);
    const absl::Time since = it == since_.end() ? now : it->second;
    next[key] = since;
    *c.mutable_since() = ToTimestamp(since);
  }
  since_ = std::move(next);
}

}  // namespace nodeward
