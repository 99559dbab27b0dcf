#ifndef NODEWARD_AGENT_SERVER_STATUS_REPORT_H_
#define NODEWARD_AGENT_SERVER_STATUS_REPORT_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/command/command_processor.h"
#include "agent/firewall/firewall_reconciler.h"
#include "agent/server/health_conditions.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/state.pb.h"

namespace nodeward {

// Facts about the running agent that are not command statistics.
struct AgentInfo {
  std::string version;
  std::string node_id;
  std::string boot_id;
  absl::Time started_at;
  std::string listen_address;
  uint32_t trusted_keys = 0;
  absl::Time trust_loaded_at;
  std::string last_reload_error;
  bool firewall_enabled = false;
  firewall::FirewallStatus firewall;
  bool volumes_enabled = false;
  std::vector<nodeward::v1::VolumeStatus> volumes;
  std::string wipe;              // WipeHandler::Describe()
  bool wipe_incomplete = false;  // a wipe started and is not verified complete
  std::string signing_public_key;  // raw Ed25519 (empty: not loaded)
  std::string signing_key_id;
  std::string listener_down;  // why the gRPC listener probe fails ("" when up)
  // Found at startup (bad config pieces, a broken audit chain, ...): only
  // type, subject and message are used.
  std::vector<nodeward::v1::Condition> startup_conditions;
  // Sampled for this report (sampled_at unset: not sampled); host_error
  // says what could not be read.
  nodeward::v1::HostHealth host;
  std::string host_error;
  uint32_t health_streams = 0;
  std::vector<nodeward::v1::CertificateHealth> certificates;
  nodeward::v1::AccessHealth access;  // enabled false: not configured
  nodeward::v1::AuditHealth audit;
  // audit::AuditAcknowledgements::Verdict: 0 intact, 1 truncated, 2 diverged, 3 unreadable.
  int audit_verdict = 0;
  // The wall clock's last step while the agent ran (InfinitePast: none).
  absl::Time clock_stepped_at = absl::InfinitePast();
  absl::Duration clock_step;
  uint32_t clock_steps = 0;
};

// How long CLOCK_STEPPED stays after a step.
inline constexpr absl::Duration kClockStepShownFor = absl::Minutes(10);

// Every condition the facts show, unsorted and without `since`.
std::vector<nodeward::v1::Condition> EvaluateConditions(const AgentInfo& info,
                                                        const ProcessorStats& stats,
                                                        absl::Time now,
                                                        const HealthPolicy& policy);

// Builders only read (the tracker, if any, stamps `since`).
nodeward::v1::HealthReport BuildHealthReport(const AgentInfo& info, const ProcessorStats& stats,
                                             absl::Time now, const HealthPolicy& policy = {},
                                             ConditionTracker* tracker = nullptr);
nodeward::v1::StatusReport BuildStatusReport(const AgentInfo& info, const ProcessorStats& stats,
                                             absl::Time now, const HealthPolicy& policy = {},
                                             ConditionTracker* tracker = nullptr);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_STATUS_REPORT_H_
