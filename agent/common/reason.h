#ifndef NODEWARD_AGENT_COMMON_REASON_H_
#define NODEWARD_AGENT_COMMON_REASON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace nodeward {

// Stable machine-readable rejection reasons: the names of nodeward.v1.Reason
// (proto/nodeward/v1/reason.proto; a unit test checks each is a value there
// and docs/protocol.md lists them all).
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
inline constexpr absl::string_view kCommandTypeUnhandled = "COMMAND_TYPE_UNHANDLED";
inline constexpr absl::string_view kCapabilityDisabled = "CAPABILITY_DISABLED";

inline constexpr absl::string_view kFirewallSpecInvalid = "FIREWALL_SPEC_INVALID";
inline constexpr absl::string_view kFirewallCidrNotPrivate = "FIREWALL_CIDR_NOT_PRIVATE";
inline constexpr absl::string_view kFirewallGenerationStale = "FIREWALL_GENERATION_STALE";
inline constexpr absl::string_view kFirewallTooLarge = "FIREWALL_TOO_LARGE";
inline constexpr absl::string_view kFirewallManagementAccessMissing =
    "FIREWALL_MANAGEMENT_ACCESS_MISSING";
inline constexpr absl::string_view kFirewallKernelContended = "FIREWALL_KERNEL_CONTENDED";
inline constexpr absl::string_view kFirewallKernelFailed = "FIREWALL_KERNEL_FAILED";
inline constexpr absl::string_view kFirewallStateNotPersisted = "FIREWALL_STATE_NOT_PERSISTED";
inline constexpr absl::string_view kFirewallNothingToConfirm = "FIREWALL_NOTHING_TO_CONFIRM";

inline constexpr absl::string_view kVolumeSpecInvalid = "VOLUME_SPEC_INVALID";
inline constexpr absl::string_view kVolumeMountPointOutsideRoots =
    "VOLUME_MOUNT_POINT_OUTSIDE_ROOTS";
inline constexpr absl::string_view kVolumeConflict = "VOLUME_CONFLICT";
inline constexpr absl::string_view kVolumeWiped = "VOLUME_WIPED";
inline constexpr absl::string_view kVolumeSpecChanged = "VOLUME_SPEC_CHANGED";
inline constexpr absl::string_view kVolumeFailed = "VOLUME_FAILED";
inline constexpr absl::string_view kVolumeKeyLost = "VOLUME_KEY_LOST";
inline constexpr absl::string_view kVolumeDeviceNotFound = "VOLUME_DEVICE_NOT_FOUND";
inline constexpr absl::string_view kVolumeDeviceInUse = "VOLUME_DEVICE_IN_USE";
inline constexpr absl::string_view kVolumeMappingExists = "VOLUME_MAPPING_EXISTS";
inline constexpr absl::string_view kVolumeMountPointBusy = "VOLUME_MOUNT_POINT_BUSY";
inline constexpr absl::string_view kVolumeDeviceNotBlank = "VOLUME_DEVICE_NOT_BLANK";
inline constexpr absl::string_view kVolumePlatformUnsupported = "VOLUME_PLATFORM_UNSUPPORTED";
inline constexpr absl::string_view kVolumeDeviceChanged = "VOLUME_DEVICE_CHANGED";
inline constexpr absl::string_view kVolumeSetupFailed = "VOLUME_SETUP_FAILED";
inline constexpr absl::string_view kVolumeStateNotPersisted = "VOLUME_STATE_NOT_PERSISTED";

inline constexpr absl::string_view kWipeSpecInvalid = "WIPE_SPEC_INVALID";
inline constexpr absl::string_view kWipeIncomplete = "WIPE_INCOMPLETE";
inline constexpr absl::string_view kWipeSigningKeyUnavailable = "WIPE_SIGNING_KEY_UNAVAILABLE";
inline constexpr absl::string_view kWipeStateNotPersisted = "WIPE_STATE_NOT_PERSISTED";

inline constexpr absl::string_view kBackupKeyInvalid = "BACKUP_KEY_INVALID";
inline constexpr absl::string_view kBackupKeyStoreFailed = "BACKUP_KEY_STORE_FAILED";

inline constexpr absl::string_view kCertTargetUnknown = "CERT_TARGET_UNKNOWN";
inline constexpr absl::string_view kCertRequestInvalid = "CERT_REQUEST_INVALID";
inline constexpr absl::string_view kCertNoPendingKey = "CERT_NO_PENDING_KEY";
inline constexpr absl::string_view kCertPemInvalid = "CERT_PEM_INVALID";
inline constexpr absl::string_view kCertChainTooLong = "CERT_CHAIN_TOO_LONG";
inline constexpr absl::string_view kCertKeyMismatch = "CERT_KEY_MISMATCH";
inline constexpr absl::string_view kCertNotYetValid = "CERT_NOT_YET_VALID";
inline constexpr absl::string_view kCertExpired = "CERT_EXPIRED";
inline constexpr absl::string_view kCertChainUntrusted = "CERT_CHAIN_UNTRUSTED";
inline constexpr absl::string_view kCertSanNotAllowed = "CERT_SAN_NOT_ALLOWED";
inline constexpr absl::string_view kCertUsageWrong = "CERT_USAGE_WRONG";
inline constexpr absl::string_view kCertTargetForeign = "CERT_TARGET_FOREIGN";
inline constexpr absl::string_view kCertStoreFailed = "CERT_STORE_FAILED";
inline constexpr absl::string_view kCertReloadFailed = "CERT_RELOAD_FAILED";
inline constexpr absl::string_view kCertNothingInstalled = "CERT_NOTHING_INSTALLED";
inline constexpr absl::string_view kCertCaDropsCurrent = "CERT_CA_DROPS_CURRENT";
// Operator access.
inline constexpr absl::string_view kAccessRequestInvalid = "ACCESS_REQUEST_INVALID";
inline constexpr absl::string_view kAccessKeyInvalid = "ACCESS_KEY_INVALID";
inline constexpr absl::string_view kAccessAccountMissing = "ACCESS_ACCOUNT_MISSING";
inline constexpr absl::string_view kAccessNotGranted = "ACCESS_NOT_GRANTED";
inline constexpr absl::string_view kAccessStoreFailed = "ACCESS_STORE_FAILED";
// Audit shipping.
inline constexpr absl::string_view kAuditAckAhead = "AUDIT_ACK_AHEAD";
inline constexpr absl::string_view kAuditAckInvalid = "AUDIT_ACK_INVALID";
inline constexpr absl::string_view kAuditAckMismatch = "AUDIT_ACK_MISMATCH";
}  // namespace reason

// A status with `code`, `reason` attached and message "<REASON>: <message>".
absl::Status Reject(absl::StatusCode code, absl::string_view reason_code,
                    absl::string_view message);

// The reason attached by Reject, or "" if none.
std::string ReasonOf(const absl::Status& status);

// Attaches `reason_code` to an existing status (keeps code and message).
absl::Status WithReason(absl::Status status, absl::string_view reason_code);

// `status` with `reason_code` attached if it carries no reason yet (a
// handler's default for failures from below it, e.g. the platform).
absl::Status WithDefaultReason(absl::Status status, absl::string_view reason_code);

// Marks a refusal whose command was admitted by the ledger: its sequence
// number is used up (a handler failure, an exact replay of one).
absl::Status MarkSequenceConsumed(absl::Status status);
bool SequenceConsumed(const absl::Status& status);

// Status payload: a serialized nodeward.v1.CommandResult naming the command
// a refusal answers (set by the command pipeline for verified commands).
inline constexpr absl::string_view kRefusalResultUrl = "type.nodeward.dev/refusal-result";

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMON_REASON_H_
