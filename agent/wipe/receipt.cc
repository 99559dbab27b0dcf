#include "agent/wipe/receipt.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/proto_util.h"

namespace nodeward::wipe {
namespace {

using nodeward::v1::WipeReceipt;
using nodeward::v1::WipeResult;

bool IsCanonicalUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  }
  return true;
}

absl::Status Missing(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("wipe receipt: ", what));
}

}  // namespace

absl::StatusOr<WipeResult> SignReceipt(const WipeReceipt& receipt, const Ed25519PrivateKey& key) {
  WipeResult r;
  r.set_receipt(receipt.SerializeAsString());
  absl::StatusOr<std::string> sig = key.Sign(Pae(kReceiptPayloadType, r.receipt()));
  if (!sig.ok()) {
    return absl::Status(sig.status().code(),
                        absl::StrCat("sign wipe receipt: ", sig.status().message()));
  }
  r.set_signature(*sig);
  r.set_signature_algorithm("ed25519");
  r.set_payload_type(std::string(kReceiptPayloadType));
  r.set_signing_key_id(key.KeyId());
  return r;
}

absl::StatusOr<WipeReceipt> VerifyReceipt(const WipeResult& result, const Ed25519PublicKey& key) {
  if (result.payload_type() != kReceiptPayloadType) {
    return absl::InvalidArgumentError(absl::StrCat(
        "wipe receipt: payload type is not ", kReceiptPayloadType, " (a signature made for "
        "something else)"));
  }
  if (result.signature_algorithm() != "ed25519") {
    return absl::InvalidArgumentError("wipe receipt: signature algorithm is not ed25519");
  }
  if (result.signing_key_id() != key.key_id()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "wipe receipt: signed by key ", result.signing_key_id().substr(0, 64),
        ", not by the pinned key ", key.key_id()));
  }
  if (!key.Verify(Pae(kReceiptPayloadType, result.receipt()), result.signature())) {
    return absl::DataLossError("wipe receipt: the signature does not verify");
  }
  WipeReceipt receipt;
  if (!receipt.ParseFromString(result.receipt())) {
    return absl::DataLossError("wipe receipt: signed bytes are not a receipt");
  }
  if (absl::Status s = CheckNoUnknowns(receipt); !s.ok()) {
    return absl::DataLossError(absl::StrCat("wipe receipt: ", s.message()));
  }
  if (receipt.node_id().empty()) return Missing("no node id");
  if (receipt.boot_id().empty()) return Missing("no boot id");
  if (!IsCanonicalUuid(receipt.command_id())) return Missing("no canonical wipe command id");
  if (receipt.sequence() == 0) return Missing("no wipe command sequence");
  if (receipt.items_size() == 0) return Missing("no item list");
  for (const auto& i : receipt.items()) {
    if (i.kind() == nodeward::v1::WipeItem::KIND_UNSPECIFIED || i.id().empty()) {
      return Missing("an item without kind or id");
    }
  }
  if (!receipt.has_started_at()) return Missing("no start time");
  if (receipt.complete() && !receipt.has_completed_at()) return Missing("complete without a time");
  return receipt;
}

absl::StatusOr<Ed25519PublicKey> ParseSigningPublicKey(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (absl::StrContains(text, "-----BEGIN PUBLIC KEY-----")) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(
        PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
    if (!k) return absl::InvalidArgumentError("signing key: PEM public key does not parse");
    if (EVP_PKEY_get_id(k.get()) != EVP_PKEY_ED25519) {
      return absl::InvalidArgumentError(
          "signing key: not an Ed25519 key (the agent's TLS key never signs receipts)");
    }
    unsigned char raw[32];
    size_t len = sizeof(raw);
    if (EVP_PKEY_get_raw_public_key(k.get(), raw, &len) != 1 || len != 32) {
      return absl::InvalidArgumentError("signing key: cannot read the Ed25519 key");
    }
    return Ed25519PublicKey::FromRaw(absl::string_view(reinterpret_cast<char*>(raw), len));
  }
  if (absl::StrContains(text, "-----BEGIN")) {
    return absl::InvalidArgumentError(
        "signing key: not an Ed25519 public key (a certificate or another PEM; the agent's TLS "
        "key never signs receipts: use signing_public_key from health)");
  }
  std::string raw;
  if (!absl::Base64Unescape(text, &raw) || raw.size() != 32) {
    return absl::InvalidArgumentError(
        "signing key: expected base64 of a 32-byte Ed25519 public key or a PEM PUBLIC KEY");
  }
  return Ed25519PublicKey::FromRaw(raw);
}

}  // namespace nodeward::wipe
