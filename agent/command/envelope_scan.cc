#include "agent/command/envelope_scan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "agent/command/command_types.h"
#include "agent/common/reason.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace nodeward {
namespace {

using absl::StatusCode;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

constexpr uint32_t kMaxPayloadType = 128;
constexpr uint32_t kMaxSignature = 160;
constexpr uint32_t kMaxKeyId = 64;
constexpr uint32_t kMaxSig = 64;

absl::Status Malformed(absl::string_view why) {
  return Reject(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed,
                absl::StrCat("envelope: ", why));
}

bool Printable(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// One Signature message, at most kMaxSignature bytes (already length-checked).
absl::Status ScanSignature(CodedInputStream* in) {
  bool have_key = false;
  while (uint32_t tag = in->ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED ||
        (field != 1 && field != 2)) {
      return Malformed("a signature carries an unknown field");
    }
    uint32_t len = 0;
    if (!in->ReadVarint32(&len)) return Malformed("a signature is truncated");
    if (field == 1) {
      if (len > kMaxKeyId) return Malformed("a key_id is longer than 64 bytes");
      std::string key_id;
      if (!in->ReadString(&key_id, static_cast<int>(len))) return Malformed("truncated key_id");
      if (!Printable(key_id)) return Malformed("a key_id is not printable ASCII");
      have_key = true;
    } else {
      if (len > kMaxSig) return Malformed("a signature is longer than 64 bytes");
      if (!in->Skip(static_cast<int>(len))) return Malformed("truncated signature");
    }
  }
  if (!in->ConsumedEntireMessage()) return Malformed("a signature does not parse");
  (void)have_key;  // a missing key id is KEY_UNKNOWN later, with its reason
  return absl::OkStatus();
}

}  // namespace

size_t MaxEnvelopeBytesFor(absl::string_view command_type, const VerifierLimits& limits) {
  if (command_type == "apply_firewall") return limits.max_envelope_bytes;
  return std::min(limits.max_small_envelope_bytes, limits.max_envelope_bytes);
}

absl::StatusOr<EnvelopeShape> ScanEnvelope(google::protobuf::io::ZeroCopyInputStream* stream,
                                           size_t size, const VerifierLimits& limits) {
  if (absl::Status s = verify::CheckSize(size, limits); !s.ok()) return s;
  CodedInputStream in(stream);
  // A limit, not SetTotalBytesLimit (which logs when reached).
  in.PushLimit(static_cast<int>(size));
  EnvelopeShape shape;
  std::string payload_type;
  bool have_type = false;
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED ||
        field < 1 || field > 3) {
      return Malformed(absl::StrCat("unknown field ", field, " or wrong wire type"));
    }
    uint32_t len = 0;
    if (!in.ReadVarint32(&len)) return Malformed("truncated field length");
    if (len > size) return Malformed("a field is longer than the envelope");
    switch (field) {
      case 1:
        shape.payload_bytes += len;
        if (!in.Skip(static_cast<int>(len))) return Malformed("truncated payload");
        break;
      case 2:
        if (have_type) return Malformed("payload_type appears twice");
        if (len > kMaxPayloadType) return Malformed("payload_type is longer than 128 bytes");
        if (!in.ReadString(&payload_type, static_cast<int>(len))) {
          return Malformed("truncated payload_type");
        }
        if (!Printable(payload_type)) return Malformed("payload_type is not printable ASCII");
        have_type = true;
        break;
      case 3: {
        if (++shape.signatures > limits.max_signatures) {
          return Reject(StatusCode::kInvalidArgument, reason::kTooManySignatures,
                        absl::StrCat("more than ", limits.max_signatures,
                                     " signatures (the cap)"));
        }
        if (len > kMaxSignature) return Malformed("a signature entry is longer than 160 bytes");
        CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(len));
        if (absl::Status s = ScanSignature(&in); !s.ok()) return s;
        if (in.BytesUntilLimit() != 0) return Malformed("truncated signature entry");
        in.PopLimit(limit);
        break;
      }
    }
  }
  if (!in.ConsumedEntireMessage() || in.CurrentPosition() != static_cast<int>(size)) {
    return Malformed("not a SignedCommand (trailing or truncated bytes)");
  }
  if (shape.signatures == 0) {
    return Reject(StatusCode::kUnauthenticated, reason::kEnvelopeMalformed, "envelope is unsigned");
  }
  absl::StatusOr<std::string> type = CommandTypeFromPayloadType(payload_type);
  if (!type.ok()) return type.status();
  shape.command_type = *type;
  const size_t cap = MaxEnvelopeBytesFor(shape.command_type, limits);
  if (size > cap) {
    return Reject(StatusCode::kResourceExhausted, reason::kEnvelopeTooLarge,
                  absl::StrCat("envelope of ", size, " bytes exceeds the cap of ", cap,
                               " for '", shape.command_type, "' commands"));
  }
  return shape;
}

absl::StatusOr<EnvelopeShape> ScanEnvelope(absl::string_view bytes, const VerifierLimits& limits) {
  google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(bytes.size()));
  return ScanEnvelope(&in, bytes.size(), limits);
}

}  // namespace nodeward
