#ifndef NODEWARD_AGENT_COMMAND_VERIFIER_H_
#define NODEWARD_AGENT_COMMAND_VERIFIER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/command/trust_store.h"
#include "nodeward/v1/command.pb.h"
#include "nodeward/v1/envelope.pb.h"

namespace nodeward {

struct VerifierLimits {
  // The cap for the types that need megabytes (apply_firewall).
  size_t max_envelope_bytes = 65536;
  // The cap for every other type.
  size_t max_small_envelope_bytes = 65536;
  size_t max_signatures = 8;
  absl::Duration clock_skew = absl::Minutes(5);
  absl::Duration max_command_lifetime = absl::Hours(1);
};

struct NodeIdentity {
  std::string node_id;
  std::string boot_id;
};

// A command whose signatures, target and time window checked out. The only
// form of a command the rest of the agent accepts.
struct VerifiedCommand {
  nodeward::v1::Command command;
  std::string command_type;
  // SHA-256 of the exact signed payload bytes.
  std::string payload_sha256;
  // Distinct key ids whose signatures verified, sorted.
  std::vector<std::string> signer_key_ids;
  // The PEM chain of the client certificate on the connection that carried
  // it (leaf first; "" if unknown). Not part of what was signed: a handler
  // may use it only to refuse (UpdateCaBundle's lock-out check).
  std::string peer_chain_pem;
};

// The verification steps, in the order Verifier::Verify runs them. Each
// returns a status built by Reject() carrying its reason; each is a unit.
namespace verify {

// ENVELOPE_TOO_LARGE (RESOURCE_EXHAUSTED) above the cap, ENVELOPE_MALFORMED
// (INVALID_ARGUMENT) for an empty envelope.
absl::Status CheckSize(size_t size, const VerifierLimits& limits);
// ENVELOPE_MALFORMED for bytes that are not a SignedCommand or carry unknown
// fields, TOO_MANY_SIGNATURES, or no signature at all.
absl::StatusOr<nodeward::v1::SignedCommand> ParseEnvelope(absl::string_view bytes,
                                                          const VerifierLimits& limits);
// KEY_UNKNOWN (UNAUTHENTICATED) for a key id the trust store lacks;
// KEY_NOT_ALLOWED (PERMISSION_DENIED) for a key whose roles do not cover the
// command type, or a command type without a policy.
absl::Status CheckSignersAllowed(const nodeward::v1::SignedCommand& envelope,
                                 const std::string& command_type, const TrustStore& trust);
// DUPLICATE_SIGNER (PERMISSION_DENIED) if a key id repeats; THRESHOLD_NOT_MET
// (PERMISSION_DENIED) if fewer distinct signers than the policy needs.
absl::Status CheckThreshold(const nodeward::v1::SignedCommand& envelope,
                            const std::string& command_type, const TrustStore& trust);
// SIG_INVALID (UNAUTHENTICATED) unless every signature verifies over
// PAE(payload_type, payload).
absl::Status CheckSignatures(const nodeward::v1::SignedCommand& envelope, const TrustStore& trust);
// PAYLOAD_MALFORMED / PAYLOAD_UNKNOWN_FIELD / PAYLOAD_TYPE_MISMATCH
// (INVALID_ARGUMENT): parse the verified bytes, reject unknowns, require every
// header field and the body that payload_type names.
absl::StatusOr<nodeward::v1::Command> ParsePayload(absl::string_view payload,
                                                   const std::string& command_type);
// WRONG_TARGET (FAILED_PRECONDITION) for another node's or boot's command.
absl::Status CheckTarget(const nodeward::v1::Command& command, const NodeIdentity& identity);
// NOT_YET_VALID / EXPIRED (FAILED_PRECONDITION), LIFETIME_TOO_LONG
// (INVALID_ARGUMENT). `now` is fixed for the whole check.
absl::Status CheckTimeWindow(const nodeward::v1::Command& command, absl::Time now,
                             const VerifierLimits& limits);

}  // namespace verify

// What a rejected command revealed before it was rejected, for the audit
// record: claimed signer key ids, and the header once the signatures verified.
struct RejectionFacts {
  std::string command_type;
  std::vector<std::string> claimed_key_ids;
  std::string command_id;
  uint64_t sequence = 0;
};

// Runs the stateless steps, size cap to time window. Sequence, dedupe and
// journaling follow in CommandLedger. Thread-safe (holds no mutable state).
absl::StatusOr<VerifiedCommand> VerifyCommand(absl::string_view envelope_bytes,
                                              const TrustStore& trust,
                                              const NodeIdentity& identity,
                                              const VerifierLimits& limits, absl::Time now,
                                              RejectionFacts* facts = nullptr);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMAND_VERIFIER_H_
