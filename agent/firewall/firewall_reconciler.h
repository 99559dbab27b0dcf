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

// Owns the firewall: the desired state (persisted), the generation in
// force, and the PacketFilter. Applies ApplyFirewall commands. Thread-safe.
class FirewallReconciler final : public CommandHandler {
 public:
  FirewallReconciler(platform::PacketFilter* filter, platform::FileSystem* fs,
                     std::string state_path, ManagementAccess management);

  // Boot: applies the persisted state, or the management-only baseline if
  // there is none. DATA_LOSS if the state file is corrupt (the baseline is
  // applied first, so management access stays open).
  absl::Status Restore();

  // CommandHandler: validate -> (dry run: report) -> replace the table in one
  // transaction -> persist. If persisting fails the previous ruleset is put
  // back and the command fails.
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;

  uint64_t generation() const;

 private:
  platform::PacketFilter* const filter_;
  platform::FileSystem* const fs_;
  const std::string state_path_;
  const ManagementAccess management_;
  mutable absl::Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<ValidatedFirewall> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward::firewall

#endif  // NODEWARD_AGENT_FIREWALL_FIREWALL_RECONCILER_H_
