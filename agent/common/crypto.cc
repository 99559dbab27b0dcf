#include "agent/common/crypto.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodeward {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

std::shared_ptr<EVP_PKEY> Wrap(EVP_PKEY* k) { return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free); }

}  // namespace

std::string Sha256(absl::string_view data) {
  unsigned char out[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string HexEncode(absl::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

absl::StatusOr<SecureBuffer> PrivateKeyToPkcs8Pem(EVP_PKEY* key) {
  // BIO_s_secmem keeps the encoded key in OpenSSL's secure heap when enabled.
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                                            nullptr) != 1) {
    return absl::InternalError("encode private key: OpenSSL failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  absl::StatusOr<SecureBuffer> out = SecureBuffer::Create(static_cast<size_t>(len));
  if (!out.ok()) return out.status();
  std::memcpy(out->data(), data, static_cast<size_t>(len));
  return out;
}

std::string Pae(absl::string_view payload_type, absl::string_view payload) {
  return absl::StrCat("DSSEv1 ", payload_type.size(), " ", payload_type, " ", payload.size(), " ",
                      payload);
}

Ed25519PublicKey::Ed25519PublicKey(std::shared_ptr<EVP_PKEY> key, std::string raw)
    : key_(std::move(key)), raw_(std::move(raw)), key_id_(HexEncode(Sha256(raw_))) {}

absl::StatusOr<Ed25519PublicKey> Ed25519PublicKey::FromRaw(absl::string_view raw) {
  if (raw.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("load Ed25519 public key: need 32 bytes, got ", raw.size()));
  }
  EVP_PKEY* k = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  if (k == nullptr) return absl::InvalidArgumentError("load Ed25519 public key: rejected by OpenSSL");
  return Ed25519PublicKey(Wrap(k), std::string(raw));
}

bool Ed25519PublicKey::Verify(absl::string_view message, absl::string_view signature) const {
  if (signature.size() != 64) return false;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(),
                          reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::Generate() {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (k == nullptr) return absl::InternalError("generate Ed25519 key: OpenSSL failed");
  return Ed25519PrivateKey(Wrap(k));
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::FromPem(const SecureBuffer& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (k == nullptr) return absl::InvalidArgumentError("load signing key: not a PEM private key");
  if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(k);
    return absl::InvalidArgumentError("load signing key: not an Ed25519 key");
  }
  return Ed25519PrivateKey(Wrap(k));
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::FromPemFile(const std::string& path) {
  absl::StatusOr<SecureBuffer> pem = SecureBuffer::ReadFile(path, 16384);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<Ed25519PrivateKey> key = FromPem(*pem);
  if (!key.ok()) {
    return absl::Status(key.status().code(), absl::StrCat(key.status().message(), ": ", path));
  }
  return key;
}

absl::StatusOr<SecureBuffer> Ed25519PrivateKey::ToPem() const {
  return PrivateKeyToPkcs8Pem(key_.get());
}

absl::StatusOr<std::string> Ed25519PrivateKey::Sign(absl::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char sig[64];
  size_t siglen = sizeof(sig);
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &siglen,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return absl::InternalError("sign with Ed25519 key: OpenSSL failed");
  }
  return std::string(reinterpret_cast<char*>(sig), siglen);
}

std::string Ed25519PrivateKey::PublicRaw() const {
  unsigned char raw[32];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(key_.get(), raw, &len) != 1) return std::string();
  return std::string(reinterpret_cast<char*>(raw), len);
}

std::string Ed25519PrivateKey::KeyId() const { return HexEncode(Sha256(PublicRaw())); }

}  // namespace nodeward
