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

// "application/vnd.nodeward.v1.command.<type>+protobuf".
std::string PayloadTypeFor(absl::string_view type);

// The type named by a payload_type, or INVALID_ARGUMENT with
// PAYLOAD_TYPE_UNKNOWN if it names none.
absl::StatusOr<std::string> CommandTypeFromPayloadType(absl::string_view payload_type);

// The set body field's name, or "" if no body is set.
std::string CommandTypeOf(const nodeward::v1::Command& command);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMAND_COMMAND_TYPES_H_
