#ifndef NODEWARD_AGENT_APP_CONFIG_H_
#define NODEWARD_AGENT_APP_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "agent/command/verifier.h"
#include "agent/state/command_ledger.h"
#include "nodeward/v1/config.pb.h"
#include "platform/file_system.h"

namespace nodeward {

inline constexpr char kDefaultStateDir[] = "/var/lib/nodeward";
inline constexpr char kDefaultStatusSocket[] = "/run/nodeward/status.sock";
inline constexpr char kDefaultBootIdFile[] = "/proc/sys/kernel/random/boot_id";

// Reads the JSON config (unknown fields rejected), fills defaults and checks
// it, trust section included. INVALID_ARGUMENT naming the field on any error;
// NOT_FOUND etc. if the file cannot be read.
absl::StatusOr<nodeward::v1::AgentConfig> LoadConfig(platform::FileSystem* fs,
                                                     const std::string& path);

VerifierLimits ToVerifierLimits(const nodeward::v1::LimitsConfig& limits);
LedgerOptions ToLedgerOptions(const nodeward::v1::AgentConfig& config);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_APP_CONFIG_H_
