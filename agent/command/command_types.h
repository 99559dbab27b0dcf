#ifndef NODEWARD_AGENT_COMMAND_COMMAND_TYPES_H_
#define NODEWARD_AGENT_COMMAND_COMMAND_TYPES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nodeward/v1/command.pb.h"

namespace nodeward {

// A command type is the name of a field of the Command.body oneof ("ping").
// Adding a body field to command.proto adds a type; nothing here changes.

// True if `type` names a Command.body field.
bool IsKnownCommandType(absl::string_view type);

// Destructive variants of a command type have a policy of their own
// (security rule 7), checked after the payload is parsed:
// "setup_volume.destroy_existing_data" for a SetupVolume that may format
// over data. A known command type or a known variant.
inline constexpr absl::string_view kDestroyingSetupVolume = "setup_volume.destroy_existing_data";
bool IsKnownPolicyName(absl::string_view name);
// The variant policy `command` needs besides its type's, or "" if none.
std::string DestructiveVariantOf(const nodeward::v1::Command& command);

// "application/vnd.nodeward.v1.command.<type>+protobuf".
std::string PayloadTypeFor(absl::string_view type);

// The type named by a payload_type, or INVALID_ARGUMENT with
// PAYLOAD_TYPE_UNKNOWN if it names none.
absl::StatusOr<std::string> CommandTypeFromPayloadType(absl::string_view payload_type);

// The set body field's name, or "" if no body is set.
std::string CommandTypeOf(const nodeward::v1::Command& command);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMAND_COMMAND_TYPES_H_
