#ifndef NODEWARD_AGENT_WIPE_RECEIPT_H_
#define NODEWARD_AGENT_WIPE_RECEIPT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/common/crypto.h"
#include "nodeward/v1/agent.pb.h"

namespace nodeward::wipe {

// The DSSE payload type of a wipe receipt. The signature is Ed25519 over
// PAE(kReceiptPayloadType, serialized WipeReceipt) with the agent's own
// signing key (agent/attest/signing_key.h), which never signs anything for
// TLS: no other message the agent signs can be read as a receipt.
inline constexpr absl::string_view kReceiptPayloadType =
    "application/vnd.nodeward.wipe-receipt.v1+protobuf";

// Signs `receipt` with the agent's signing key.
absl::StatusOr<nodeward::v1::WipeResult> SignReceipt(const nodeward::v1::WipeReceipt& receipt,
                                                     const Ed25519PrivateKey& key);

// Checks a WipeResult against the agent's signing public key (pinned by the
// orchestrator from health): the payload type is the receipt's, the key id
// names this key, the Ed25519 signature verifies over the PAE, the receipt
// has no unknown field, and it names node, boot, command id and sequence and
// lists what it destroyed. Returns the receipt (complete or not: the caller
// decides). INVALID_ARGUMENT for a result meant for another key or type,
// DATA_LOSS for a signature or receipt that does not hold.
absl::StatusOr<nodeward::v1::WipeReceipt> VerifyReceipt(const nodeward::v1::WipeResult& result,
                                                        const Ed25519PublicKey& key);

// Reads a signing public key as health reports it: base64 of the 32 raw
// bytes, or a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) of an Ed25519 key.
// Anything else (a certificate, an EC or RSA key) is INVALID_ARGUMENT.
absl::StatusOr<Ed25519PublicKey> ParseSigningPublicKey(absl::string_view text);

}  // namespace nodeward::wipe

#endif  // NODEWARD_AGENT_WIPE_RECEIPT_H_
