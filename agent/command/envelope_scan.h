#ifndef NODEWARD_AGENT_COMMAND_ENVELOPE_SCAN_H_
#define NODEWARD_AGENT_COMMAND_ENVELOPE_SCAN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/command/verifier.h"
#include "google/protobuf/io/zero_copy_stream.h"

namespace nodeward {

// What the wire says about an envelope before anything is parsed into
// objects: the claimed command type and the number of signatures.
struct EnvelopeShape {
  std::string command_type;
  size_t signatures = 0;
  size_t payload_bytes = 0;
};

// The cheap checks (security rule 4), on the raw bytes of a SignedCommand
// without a full parse or a copy, so an unauthenticated-but-certified peer
// cannot make the agent allocate or walk more than the bytes it sent:
// - fields: only payload (1), payload_type (2), signatures (3), each
//   length-delimited; anything else is ENVELOPE_MALFORMED;
// - signatures: stops at max_signatures + 1 (TOO_MANY_SIGNATURES), none is
//   ENVELOPE_MALFORMED; each at most 160 bytes with a printable key_id of
//   at most 64 bytes and a sig of at most 64;
// - payload_type: one, printable ASCII, at most 128 bytes, naming a known
//   command type (PAYLOAD_TYPE_UNKNOWN); strings with invalid UTF-8 never
//   reach libprotobuf (which would log each one);
// - size: at most MaxEnvelopeBytesFor(type) (ENVELOPE_TOO_LARGE).
// `size` is the total byte count of `in`.
absl::StatusOr<EnvelopeShape> ScanEnvelope(google::protobuf::io::ZeroCopyInputStream* in,
                                           size_t size, const VerifierLimits& limits);
absl::StatusOr<EnvelopeShape> ScanEnvelope(absl::string_view bytes, const VerifierLimits& limits);

// The envelope size cap for a command type: only the types that carry
// megabytes (apply_firewall) may use limits.max_envelope_bytes; every other
// type is held to limits.max_small_envelope_bytes.
size_t MaxEnvelopeBytesFor(absl::string_view command_type, const VerifierLimits& limits);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMAND_ENVELOPE_SCAN_H_
