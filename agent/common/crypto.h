#ifndef NODEWARD_AGENT_COMMON_CRYPTO_H_
#define NODEWARD_AGENT_COMMON_CRYPTO_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/common/secure_buffer.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace nodeward {

// Raw 32-byte SHA-256 digest.
std::string Sha256(absl::string_view data);
std::string HexEncode(absl::string_view bytes);

// Unencrypted PKCS#8 PEM of any private key, encoded in OpenSSL's secure
// heap and returned in a SecureBuffer.
absl::StatusOr<SecureBuffer> PrivateKeyToPkcs8Pem(EVP_PKEY* key);

// DSSE v1 pre-authentication encoding:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN as ASCII decimal.
std::string Pae(absl::string_view payload_type, absl::string_view payload);

// An Ed25519 verification key. Immutable; Verify is thread-safe.
class Ed25519PublicKey {
 public:
  // INVALID_ARGUMENT unless `raw` is 32 bytes of a valid key.
  static absl::StatusOr<Ed25519PublicKey> FromRaw(absl::string_view raw);
  bool Verify(absl::string_view message, absl::string_view signature) const;
  const std::string& raw() const { return raw_; }
  // hex(SHA-256(raw)): the key id used in signatures and config.
  const std::string& key_id() const { return key_id_; }

 private:
  Ed25519PublicKey(std::shared_ptr<EVP_PKEY> key, std::string raw);
  std::shared_ptr<EVP_PKEY> key_;
  std::string raw_;
  std::string key_id_;
};

// An Ed25519 signing key (reference client only; the agent never signs
// commands). OpenSSL keeps and cleanses the key; PEM text lives only in
// SecureBuffers.
class Ed25519PrivateKey {
 public:
  static absl::StatusOr<Ed25519PrivateKey> Generate();
  // PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----").
  static absl::StatusOr<Ed25519PrivateKey> FromPem(const SecureBuffer& pem);
  static absl::StatusOr<Ed25519PrivateKey> FromPemFile(const std::string& path);
  absl::StatusOr<SecureBuffer> ToPem() const;
  absl::StatusOr<std::string> Sign(absl::string_view message) const;
  std::string PublicRaw() const;
  std::string KeyId() const;

 private:
  explicit Ed25519PrivateKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMON_CRYPTO_H_
