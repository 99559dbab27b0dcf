#ifndef NODEWARD_AGENT_COMMON_PROTO_UTIL_H_
#define NODEWARD_AGENT_COMMON_PROTO_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "platform/file_system.h"

namespace nodeward {

// Reads a binary record file (one written with WriteFileAtomically) into
// `message`: false if there is none, true if read. DATA_LOSS "<what> <path>
// is corrupt" if it does not parse (`message` is then cleared).
absl::StatusOr<bool> ReadRecordFile(platform::FileSystem* fs, const std::string& path,
                                    google::protobuf::Message* message, absl::string_view what);

// INVALID_ARGUMENT naming the first unknown field or unknown enum value found
// anywhere in `message` (recursively). Unknowns are critical: an old agent must
// not silently drop a restriction a newer orchestrator added.
absl::Status CheckNoUnknowns(const google::protobuf::Message& message);

// Protobuf JSON with unknown fields rejected; the error names `what`.
absl::Status ParseJson(absl::string_view json, google::protobuf::Message* message,
                       absl::string_view what);

// Single-line protobuf JSON with original field names. Deterministic for a
// given message and protobuf version (the audit chain hashes it).
std::string ToJsonLine(const google::protobuf::Message& message);
// Indented JSON for people.
std::string ToJsonPretty(const google::protobuf::Message& message);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMON_PROTO_UTIL_H_
