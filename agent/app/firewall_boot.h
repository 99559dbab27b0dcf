#ifndef NODEWARD_AGENT_APP_FIREWALL_BOOT_H_
#define NODEWARD_AGENT_APP_FIREWALL_BOOT_H_

// `nodeward-agent --restore-firewall-only`: the early boot step
// (nodeward-firewall.service, Before=network-pre.target). Puts the last
// confirmed firewall state, or the management-only baseline on first boot,
// into the kernel before any interface is up, and exits. Needs only the
// config and the state directory: no TLS material, no ledger, no gRPC, so
// the host is filtered even when the agent itself then fails to start.

#include <string>

#include <functional>

#include "absl/status/statusor.h"
#include "agent/firewall/ruleset_builder.h"
#include "nodeward/v1/config.pb.h"
#include "platform/file_system.h"
#include "platform/packet_filter.h"

namespace nodeward {

struct FirewallBootResult {
  bool enabled = false;        // the config enables the firewall
  bool state_lost = false;     // the state file was corrupt: baseline applied
  std::string summary;         // for the log
};

// The management access the config grants (CIDRs checked by LoadConfig).
firewall::ManagementAccess ManagementFrom(const nodeward::v1::AgentConfig& config);

// An error; `*config_error` says whether it came from the config (the
// caller exits 78, EX_CONFIG) or from the kernel. When the config cannot be
// loaded, the firewall state at `fallback_state_path` (the agent records the
// management access and table with it) is restored all the same and the
// error says so; without one, nothing is changed.
absl::StatusOr<FirewallBootResult> RestoreFirewallOnly(
    platform::FileSystem* fs, const std::string& config_path,
    const std::function<platform::PacketFilterPtr(const std::string& table)>& make_filter,
    bool* config_error, const std::string& fallback_state_path = "");

}  // namespace nodeward

#endif  // NODEWARD_AGENT_APP_FIREWALL_BOOT_H_
