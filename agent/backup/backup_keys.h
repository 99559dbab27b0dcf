#ifndef NODEWARD_AGENT_BACKUP_BACKUP_KEYS_H_
#define NODEWARD_AGENT_BACKUP_BACKUP_KEYS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/common/secure_buffer.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace nodeward::backup {

// Bits every key must have to encrypt, and to read a v2 file.
inline constexpr int kMinRsaBits = 3072;
// v1 ("pghoa1") files written by other tools may use 2048-bit keys.
inline constexpr int kMinRsaBitsV1Read = 2048;

// A service's backup key-encryption public key (RSA). Immutable, thread-safe.
class RsaPublicKey {
 public:
  // SPKI ("BEGIN PUBLIC KEY") or PKCS#1 ("BEGIN RSA PUBLIC KEY") PEM.
  // INVALID_ARGUMENT for anything else, a non-RSA key, or fewer than
  // `min_bits` bits.
  static absl::StatusOr<RsaPublicKey> FromPem(absl::string_view pem, int min_bits = kMinRsaBits);
  static absl::StatusOr<RsaPublicKey> FromPemFile(const std::string& path,
                                                  int min_bits = kMinRsaBits);
  // SHA-256 of the DER SubjectPublicKeyInfo: 32 raw bytes.
  const std::string& key_id() const { return key_id_; }
  std::string key_id_hex() const;
  int bits() const { return bits_; }
  // Modulus length in bytes (= RSA-OAEP output length).
  int size() const { return (bits_ + 7) / 8; }
  std::string ToPem() const;
  EVP_PKEY* get() const { return key_.get(); }

 private:
  friend class RsaPrivateKey;
  explicit RsaPublicKey(std::shared_ptr<EVP_PKEY> key);
  std::shared_ptr<EVP_PKEY> key_;
  std::string key_id_;
  int bits_ = 0;
};

// The private half. The PEM text only ever lives in SecureBuffers; OpenSSL
// holds the key itself and cleanses it on free.
class RsaPrivateKey {
 public:
  // A fresh key, public exponent 65537.
  static absl::StatusOr<RsaPrivateKey> Generate(int bits = kMinRsaBits);
  // Unencrypted PKCS#8 ("BEGIN PRIVATE KEY") or PKCS#1 ("BEGIN RSA PRIVATE
  // KEY") PEM, as pghoard writes them. INVALID_ARGUMENT for an encrypted PEM,
  // a non-RSA key or fewer than `min_bits` bits.
  static absl::StatusOr<RsaPrivateKey> FromPem(const SecureBuffer& pem,
                                               int min_bits = kMinRsaBitsV1Read);
  static absl::StatusOr<RsaPrivateKey> FromPemFile(const std::string& path,
                                                   int min_bits = kMinRsaBitsV1Read);
  // Unencrypted PKCS#8 PEM.
  absl::StatusOr<SecureBuffer> ToPkcs8Pem() const;
  const RsaPublicKey& public_key() const { return public_key_; }
  EVP_PKEY* get() const { return key_.get(); }

 private:
  RsaPrivateKey(std::shared_ptr<EVP_PKEY> key, RsaPublicKey pub)
      : key_(std::move(key)), public_key_(std::move(pub)) {}
  std::shared_ptr<EVP_PKEY> key_;
  RsaPublicKey public_key_;
};

// RSA-OAEP with `md` for the label hash and MGF1 ("SHA1" or "SHA256"),
// empty label.
absl::StatusOr<std::string> OaepWrap(const RsaPublicKey& key, absl::string_view md,
                                     absl::string_view secret);
// Unwraps into secure memory. PERMISSION_DENIED when the key does not fit
// (the usual case when several keys are tried).
absl::StatusOr<SecureBuffer> OaepUnwrap(const RsaPrivateKey& key, absl::string_view md,
                                        absl::string_view wrapped);

}  // namespace nodeward::backup

#endif  // NODEWARD_AGENT_BACKUP_BACKUP_KEYS_H_
