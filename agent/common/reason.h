#ifndef NODEWARD_AGENT_COMMON_REASON_H_
#define NODEWARD_AGENT_COMMON_REASON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace nodeward {

// Stable machine-readable rejection reasons (docs/protocol.md lists them).
// Each travels as an absl::Status payload and, on the wire, as the
// "nodeward-reason" trailing metadata of the gRPC error.
namespace reason {
inline constexpr absl::string_view kEnvelopeTooLarge = "ENVELOPE_TOO_LARGE";
inline constexpr absl::string_view kEnvelopeMalformed = "ENVELOPE_MALFORMED";
inline constexpr absl::string_view kPayloadTypeUnknown = "PAYLOAD_TYPE_UNKNOWN";
inline constexpr absl::string_view kTooManySignatures = "TOO_MANY_SIGNATURES";
inline constexpr absl::string_view kKeyUnknown = "KEY_UNKNOWN";
inline constexpr absl::string_view kKeyNotAllowed = "KEY_NOT_ALLOWED";
inline constexpr absl::string_view kDuplicateSigner = "DUPLICATE_SIGNER";
inline constexpr absl::string_view kThresholdNotMet = "THRESHOLD_NOT_MET";
inline constexpr absl::string_view kSigInvalid = "SIG_INVALID";
inline constexpr absl::string_view kPayloadMalformed = "PAYLOAD_MALFORMED";
inline constexpr absl::string_view kPayloadUnknownField = "PAYLOAD_UNKNOWN_FIELD";
inline constexpr absl::string_view kPayloadTypeMismatch = "PAYLOAD_TYPE_MISMATCH";
inline constexpr absl::string_view kWrongTarget = "WRONG_TARGET";
inline constexpr absl::string_view kNotYetValid = "NOT_YET_VALID";
inline constexpr absl::string_view kExpired = "EXPIRED";
inline constexpr absl::string_view kLifetimeTooLong = "LIFETIME_TOO_LONG";
inline constexpr absl::string_view kSequenceReplayed = "SEQUENCE_REPLAYED";
inline constexpr absl::string_view kSequenceJumpTooLarge = "SEQUENCE_JUMP_TOO_LARGE";
inline constexpr absl::string_view kCommandIdReused = "COMMAND_ID_REUSED";
inline constexpr absl::string_view kCommandInProgress = "COMMAND_IN_PROGRESS";
inline constexpr absl::string_view kStateUnavailable = "STATE_UNAVAILABLE";
inline constexpr absl::string_view kPeerNotAllowed = "PEER_NOT_ALLOWED";
inline constexpr absl::string_view kShuttingDown = "SHUTTING_DOWN";
inline constexpr absl::string_view kAgentBusy = "AGENT_BUSY";
inline constexpr absl::string_view kInDoubt = "IN_DOUBT";
inline constexpr absl::string_view kApplyFailed = "APPLY_FAILED";
inline constexpr absl::string_view kAuditUnavailable = "AUDIT_UNAVAILABLE";
// A wipe was ordered on this node: no new volume or key from then on.
inline constexpr absl::string_view kWipeStarted = "WIPE_STARTED";
}  // namespace reason

// A status with `code`, `reason` attached and message "<REASON>: <message>".
absl::Status Reject(absl::StatusCode code, absl::string_view reason_code,
                    absl::string_view message);

// The reason attached by Reject, or "" if none.
std::string ReasonOf(const absl::Status& status);

// Attaches `reason_code` to an existing status (keeps code and message).
absl::Status WithReason(absl::Status status, absl::string_view reason_code);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMON_REASON_H_
