#include "agent/command/verifier.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/command/command_types.h"
#include "agent/command/envelope_scan.h"
#include "agent/common/crypto.h"
#include "agent/common/proto_util.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"

namespace nodeward {
namespace verify {
namespace {

using absl::StatusCode;
using nodeward::v1::Command;
using nodeward::v1::SignedCommand;

// Key ids come from the wire: quote at most a short, printable prefix.
std::string Quote(absl::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out.push_back(absl::ascii_isprint(c) ? c : '?');
  return absl::StrCat("'", out, s.size() > 64 ? "...'" : "'");
}

bool IsCanonicalUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
      return false;
    }
  }
  return true;
}

// RFC 3339 range that google.protobuf.Timestamp allows: 0001-01-01 .. 9999-12-31.
bool ValidTimestamp(const google::protobuf::Timestamp& t) {
  return t.seconds() >= -62135596800LL && t.seconds() <= 253402300799LL && t.nanos() >= 0 &&
         t.nanos() < 1000000000;
}

absl::Status Malformed(absl::string_view msg) {
  return Reject(StatusCode::kInvalidArgument, reason::kPayloadMalformed, msg);
}

}  // namespace

absl::Status CheckSize(size_t size, const VerifierLimits& limits) {
  if (size == 0) {
    return Reject(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed, "empty envelope");
  }
  if (size > limits.max_envelope_bytes) {
    return Reject(StatusCode::kResourceExhausted, reason::kEnvelopeTooLarge,
                  absl::StrCat("envelope of ", size, " bytes exceeds the cap of ",
                               limits.max_envelope_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<SignedCommand> ParseEnvelope(absl::string_view bytes, const VerifierLimits& limits) {
  SignedCommand env;
  if (!env.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Reject(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed,
                  "envelope is not a SignedCommand");
  }
  if (absl::Status s = CheckNoUnknowns(env); !s.ok()) {
    return Reject(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed, s.message());
  }
  if (env.signatures_size() == 0) {
    return Reject(StatusCode::kUnauthenticated, reason::kEnvelopeMalformed, "envelope is unsigned");
  }
  if (static_cast<size_t>(env.signatures_size()) > limits.max_signatures) {
    return Reject(StatusCode::kInvalidArgument, reason::kTooManySignatures,
                  absl::StrCat(env.signatures_size(), " signatures exceed the cap of ",
                               limits.max_signatures));
  }
  return env;
}

absl::Status CheckSignersAllowed(const SignedCommand& envelope, const std::string& command_type,
                                 const TrustStore& trust) {
  if (trust.FindPolicy(command_type) == nullptr) {
    return Reject(StatusCode::kPermissionDenied, reason::kKeyNotAllowed,
                  absl::StrCat("no key may sign '", command_type, "' commands on this node"));
  }
  for (const auto& sig : envelope.signatures()) {
    const TrustStore::Key* key = trust.FindKey(sig.key_id());
    if (key == nullptr) {
      return Reject(StatusCode::kUnauthenticated, reason::kKeyUnknown,
                    absl::StrCat("key ", Quote(sig.key_id()), " is not trusted"));
    }
    if (!trust.KeyAllowedFor(*key, command_type)) {
      return Reject(StatusCode::kPermissionDenied, reason::kKeyNotAllowed,
                    absl::StrCat("key ", sig.key_id(), " may not sign '", command_type,
                                 "' commands"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckThreshold(const SignedCommand& envelope, const std::string& command_type,
                            const TrustStore& trust) {
  std::set<std::string> distinct;
  for (const auto& sig : envelope.signatures()) {
    if (!distinct.insert(sig.key_id()).second) {
      return Reject(StatusCode::kPermissionDenied, reason::kDuplicateSigner,
                    absl::StrCat("key ", sig.key_id(), " signed more than once"));
    }
  }
  const TrustStore::Policy* policy = trust.FindPolicy(command_type);
  uint32_t need = policy == nullptr ? 1 : policy->threshold;
  if (distinct.size() < need) {
    return Reject(StatusCode::kPermissionDenied, reason::kThresholdNotMet,
                  absl::StrCat("'", command_type, "' needs ", need, " distinct signers, got ",
                               distinct.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckSignatures(const SignedCommand& envelope, const TrustStore& trust) {
  const std::string pae = Pae(envelope.payload_type(), envelope.payload());
  for (const auto& sig : envelope.signatures()) {
    const TrustStore::Key* key = trust.FindKey(sig.key_id());
    if (key == nullptr || !key->public_key.Verify(pae, sig.sig())) {
      return Reject(StatusCode::kUnauthenticated, reason::kSigInvalid,
                    absl::StrCat("signature by key ", Quote(sig.key_id()), " does not verify"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Command> ParsePayload(absl::string_view payload, const std::string& command_type) {
  if (payload.empty()) return Malformed("payload is empty");
  Command c;
  if (!c.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Malformed("payload is not a Command");
  }
  if (absl::Status s = CheckNoUnknowns(c); !s.ok()) {
    return Reject(StatusCode::kInvalidArgument, reason::kPayloadUnknownField, s.message());
  }
  const std::string body = CommandTypeOf(c);
  if (body != command_type) {
    return Reject(StatusCode::kInvalidArgument, reason::kPayloadTypeMismatch,
                  absl::StrCat("payload_type says '", command_type, "' but the body is '",
                               body.empty() ? "(none)" : body, "'"));
  }
  if (c.node_id().empty()) return Malformed("node_id is empty");
  if (c.boot_id().empty()) return Malformed("boot_id is empty");
  if (!IsCanonicalUuid(c.command_id())) {
    return Malformed("command_id is not a lower-case canonical UUID");
  }
  if (c.command_id() == "00000000-0000-0000-0000-000000000000") {
    return Malformed("command_id is the nil UUID");
  }
  if (c.sequence() == 0) return Malformed("sequence must be at least 1");
  if (!c.has_issued_at() || !c.has_expires_at()) {
    return Malformed("issued_at and expires_at are required");
  }
  if (!ValidTimestamp(c.issued_at()) || !ValidTimestamp(c.expires_at())) {
    return Malformed("issued_at or expires_at is out of range");
  }
  return c;
}

absl::Status CheckTarget(const Command& command, const NodeIdentity& identity) {
  if (command.node_id() != identity.node_id) {
    return Reject(StatusCode::kFailedPrecondition, reason::kWrongTarget,
                  absl::StrCat("command is for node ", Quote(command.node_id()), ", this is ",
                               identity.node_id));
  }
  if (command.boot_id() != identity.boot_id) {
    return Reject(StatusCode::kFailedPrecondition, reason::kWrongTarget,
                  absl::StrCat("command is for boot ", Quote(command.boot_id()),
                               ", this node booted as ", identity.boot_id));
  }
  return absl::OkStatus();
}

absl::Status CheckTimeWindow(const Command& command, absl::Time now, const VerifierLimits& limits) {
  const absl::Time issued = FromTimestamp(command.issued_at());
  const absl::Time expires = FromTimestamp(command.expires_at());
  if (expires <= issued) {
    return Reject(StatusCode::kInvalidArgument, reason::kPayloadMalformed,
                  "expires_at is not after issued_at");
  }
  if (expires - issued > limits.max_command_lifetime) {
    return Reject(StatusCode::kInvalidArgument, reason::kLifetimeTooLong,
                  absl::StrCat("lifetime ", absl::FormatDuration(expires - issued),
                               " exceeds the maximum ",
                               absl::FormatDuration(limits.max_command_lifetime)));
  }
  if (issued > now + limits.clock_skew) {
    return Reject(StatusCode::kFailedPrecondition, reason::kNotYetValid,
                  absl::StrCat("issued_at is ", absl::FormatDuration(issued - now),
                               " in the future (allowed skew ",
                               absl::FormatDuration(limits.clock_skew), ")"));
  }
  if (expires + limits.clock_skew <= now) {
    return Reject(StatusCode::kFailedPrecondition, reason::kExpired,
                  absl::StrCat("expired ", absl::FormatDuration(now - expires), " ago (allowed skew ",
                               absl::FormatDuration(limits.clock_skew), ")"));
  }
  return absl::OkStatus();
}

}  // namespace verify

absl::StatusOr<VerifiedCommand> VerifyCommand(absl::string_view envelope_bytes,
                                              const TrustStore& trust,
                                              const NodeIdentity& identity,
                                              const VerifierLimits& limits, absl::Time now,
                                              RejectionFacts* facts) {
  RejectionFacts ignored;
  if (facts == nullptr) facts = &ignored;
  // Sizes, counts and lengths on the wire first: nothing is parsed into
  // objects before they hold (ENVELOPE_*, TOO_MANY_SIGNATURES, type caps).
  ASSIGN_OR_RETURN(EnvelopeShape shape, ScanEnvelope(envelope_bytes, limits));
  facts->command_type = shape.command_type;
  ASSIGN_OR_RETURN(nodeward::v1::SignedCommand env, verify::ParseEnvelope(envelope_bytes, limits));
  for (const auto& sig : env.signatures()) {
    facts->claimed_key_ids.push_back(sig.key_id().substr(0, 64));
  }
  std::string type = std::move(shape.command_type);
  RETURN_IF_ERROR(verify::CheckSignersAllowed(env, type, trust));
  RETURN_IF_ERROR(verify::CheckThreshold(env, type, trust));
  RETURN_IF_ERROR(verify::CheckSignatures(env, trust));
  ASSIGN_OR_RETURN(nodeward::v1::Command command, verify::ParsePayload(env.payload(), type));
  facts->command_id = command.command_id();
  facts->sequence = command.sequence();
  // Destroying data is its own authority: the variant's policy (roles and
  // threshold) must hold too, or the command is refused before the ledger.
  if (const std::string variant = DestructiveVariantOf(command); !variant.empty()) {
    RETURN_IF_ERROR(verify::CheckSignersAllowed(env, variant, trust));
    RETURN_IF_ERROR(verify::CheckThreshold(env, variant, trust));
  }
  RETURN_IF_ERROR(verify::CheckTarget(command, identity));
  RETURN_IF_ERROR(verify::CheckTimeWindow(command, now, limits));

  VerifiedCommand v;
  v.command = std::move(command);
  v.command_type = std::move(type);
  v.payload_sha256 = Sha256(env.payload());
  for (const auto& sig : env.signatures()) v.signer_key_ids.push_back(sig.key_id());
  std::sort(v.signer_key_ids.begin(), v.signer_key_ids.end());
  return v;
}

}  // namespace nodeward
