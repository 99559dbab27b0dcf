#ifndef NODEWARD_AGENT_FIREWALL_FIREWALL_RECONCILER_H_
#define NODEWARD_AGENT_FIREWALL_FIREWALL_RECONCILER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/command/command_handler.h"
#include "agent/firewall/firewall_spec.h"
#include "nodeward/v1/command.pb.h"
#include "platform/clock.h"
#include "platform/file_system.h"
#include "platform/packet_filter.h"

namespace nodeward::firewall {

// Always present, from the agent's local config: no command removes it.
struct ManagementAccess {
  std::vector<Cidr> cidrs;
  std::vector<uint16_t> tcp_ports;
};

// The ApplyFirewall command as a FirewallSpec. INVALID_ARGUMENT for an
// unspecified protocol or a port above 65535 in `last`.
absl::StatusOr<FirewallSpec> FromProto(const nodeward::v1::ApplyFirewall& command);

// The kernel ruleset for a validated state; `state` null gives the
// management-only baseline (first boot, before any ApplyFirewall). Rule
// order and the reason for each rule: docs/firewall.md.
platform::FilterRuleset BuildRuleset(const ManagementAccess& management,
                                     const ValidatedFirewall* state);

struct FirewallStatus {
  uint64_t generation = 0;  // in force (kernel)
  bool awaiting_confirmation = false;
  uint64_t rollbacks = 0;
  std::string last_rollback;
};

// Owns the firewall: the desired state (persisted), the generation in
// force, commit-confirmed deadlines, and the PacketFilter. Handles
// ApplyFirewall and ConfirmFirewall. Thread-safe.
class FirewallReconciler final : public CommandHandler {
 public:
  FirewallReconciler(platform::PacketFilter* filter, platform::FileSystem* fs,
                     platform::Clock* clock, std::string state_path, ManagementAccess management);

  // Boot: applies the last *confirmed* state, or the management-only
  // baseline if there is none (an unconfirmed apply does not survive a
  // restart: that is a rollback). DATA_LOSS if the state file is corrupt
  // (the baseline is applied first, so management access stays open).
  absl::Status Restore();

  // ApplyFirewall: validate -> (dry run: report) -> replace the table in one
  // transaction -> persist (or put the previous ruleset back). With
  // confirm_within_seconds the new state is pending until confirmed.
  // ConfirmFirewall: makes the pending generation the confirmed state.
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;

  // Rolls a pending apply back to the confirmed state once its deadline has
  // passed. Called by the agent's main loop every second.
  absl::Status CheckDeadline(absl::Time now);

  FirewallStatus status() const;
  uint64_t generation() const { return status().generation; }

 private:
  struct Pending {
    ValidatedFirewall state;
    std::string command;  // serialized ApplyFirewall
    absl::Time deadline;
  };
  absl::StatusOr<nodeward::v1::CommandResult> ApplyLocked(const nodeward::v1::ApplyFirewall& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<nodeward::v1::CommandResult> ConfirmLocked(uint64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Persist(const std::string& confirmed_command, uint64_t confirmed_generation,
                       uint64_t highest) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const ValidatedFirewall* InForce() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  platform::PacketFilter* const filter_;
  platform::FileSystem* const fs_;
  platform::Clock* const clock_;
  const std::string state_path_;
  const ManagementAccess management_;
  mutable absl::Mutex mu_;
  std::optional<ValidatedFirewall> confirmed_ ABSL_GUARDED_BY(mu_);
  std::string confirmed_command_ ABSL_GUARDED_BY(mu_);
  uint64_t confirmed_generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t highest_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<Pending> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t rollbacks_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_rollback_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward::firewall

#endif  // NODEWARD_AGENT_FIREWALL_FIREWALL_RECONCILER_H_
