#include "agent/backup/backup_keys.h"

#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/crypto.h"

namespace nodeward::backup {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;

std::shared_ptr<EVP_PKEY> Wrap(EVP_PKEY* k) { return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free); }

absl::Status CheckRsa(EVP_PKEY* k, int min_bits, absl::string_view what) {
  if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not an RSA key"));
  }
  if (EVP_PKEY_get_bits(k) < min_bits) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": RSA key of ", EVP_PKEY_get_bits(k),
                                                   " bits is shorter than ", min_bits));
  }
  return absl::OkStatus();
}

absl::Status SetOaep(EVP_PKEY_CTX* ctx, absl::string_view md) {
  const EVP_MD* digest = md == "SHA1" ? EVP_sha1() : EVP_sha256();
  if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx, digest) <= 0 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, digest) <= 0) {
    return absl::InternalError("configure RSA-OAEP: OpenSSL failed");
  }
  return absl::OkStatus();
}

}  // namespace

RsaPublicKey::RsaPublicKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key_.get(), &der);
  if (len > 0) {
    key_id_ = Sha256(absl::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  }
  OPENSSL_free(der);
  bits_ = EVP_PKEY_get_bits(key_.get());
}

absl::StatusOr<RsaPublicKey> RsaPublicKey::FromPem(absl::string_view pem, int min_bits) {
  // Any PEM public key OpenSSL knows: SPKI ("PUBLIC KEY") or PKCS#1 ("RSA
  // PUBLIC KEY"), which pghoard-era tooling also accepts.
  EVP_PKEY* k = nullptr;
  OSSL_DECODER_CTX* dctx = OSSL_DECODER_CTX_new_for_pkey(
      &k, "PEM", nullptr, nullptr, OSSL_KEYMGMT_SELECT_PUBLIC_KEY, nullptr, nullptr);
  const unsigned char* data = reinterpret_cast<const unsigned char*>(pem.data());
  size_t len = pem.size();
  if (dctx == nullptr || OSSL_DECODER_from_data(dctx, &data, &len) != 1) {
    EVP_PKEY_free(k);
    k = nullptr;
  }
  OSSL_DECODER_CTX_free(dctx);
  ERR_clear_error();
  if (k == nullptr) return absl::InvalidArgumentError("load backup public key: not a PEM public key");
  auto key = Wrap(k);
  if (absl::Status s = CheckRsa(k, min_bits, "load backup public key"); !s.ok()) return s;
  return RsaPublicKey(std::move(key));
}

absl::StatusOr<RsaPublicKey> RsaPublicKey::FromPemFile(const std::string& path, int min_bits) {
  absl::StatusOr<SecureBuffer> pem = SecureBuffer::ReadFile(path, 65536);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<RsaPublicKey> k = FromPem(pem->view(), min_bits);
  if (!k.ok()) return absl::Status(k.status().code(), absl::StrCat(k.status().message(), ": ", path));
  return k;
}

std::string RsaPublicKey::key_id_hex() const { return HexEncode(key_id_); }

std::string RsaPublicKey::ToPem() const {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key_.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<RsaPrivateKey> RsaPrivateKey::Generate(int bits) {
  if (bits < kMinRsaBits) {
    return absl::InvalidArgumentError(absl::StrCat("generate backup key: ", bits,
                                                   " bits is shorter than ", kMinRsaBits));
  }
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits));
  if (k == nullptr) return absl::InternalError("generate backup key: OpenSSL failed");
  auto key = Wrap(k);
  EVP_PKEY_up_ref(k);
  return RsaPrivateKey(std::move(key), RsaPublicKey(Wrap(k)));
}

absl::StatusOr<RsaPrivateKey> RsaPrivateKey::FromPem(const SecureBuffer& pem, int min_bits) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // An empty passphrase callback: an encrypted PEM fails instead of prompting.
  EVP_PKEY* k = PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return -1; }, nullptr);
  ERR_clear_error();
  if (k == nullptr) {
    return absl::InvalidArgumentError(
        "load backup private key: not an unencrypted PEM private key");
  }
  auto key = Wrap(k);
  if (absl::Status s = CheckRsa(k, min_bits, "load backup private key"); !s.ok()) return s;
  EVP_PKEY_up_ref(k);
  return RsaPrivateKey(std::move(key), RsaPublicKey(Wrap(k)));
}

absl::StatusOr<RsaPrivateKey> RsaPrivateKey::FromPemFile(const std::string& path, int min_bits) {
  absl::StatusOr<SecureBuffer> pem = SecureBuffer::ReadFile(path, 65536);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<RsaPrivateKey> k = FromPem(*pem, min_bits);
  if (!k.ok()) return absl::Status(k.status().code(), absl::StrCat(k.status().message(), ": ", path));
  return k;
}

absl::StatusOr<SecureBuffer> RsaPrivateKey::ToPkcs8Pem() const {
  return PrivateKeyToPkcs8Pem(key_.get());
}

absl::StatusOr<std::string> OaepWrap(const RsaPublicKey& key, absl::string_view md,
                                     absl::string_view secret) {
  CtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) <= 0) {
    return absl::InternalError("wrap file key: OpenSSL failed");
  }
  if (absl::Status s = SetOaep(ctx.get(), md); !s.ok()) return s;
  std::string out(static_cast<size_t>(key.size()), '\0');
  size_t len = out.size();
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                       reinterpret_cast<const unsigned char*>(secret.data()), secret.size()) <= 0) {
    return absl::InternalError("wrap file key: RSA-OAEP failed");
  }
  out.resize(len);
  return out;
}

absl::StatusOr<SecureBuffer> OaepUnwrap(const RsaPrivateKey& key, absl::string_view md,
                                        absl::string_view wrapped) {
  CtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) <= 0) {
    return absl::InternalError("unwrap file key: OpenSSL failed");
  }
  if (absl::Status s = SetOaep(ctx.get(), md); !s.ok()) return s;
  absl::StatusOr<SecureBuffer> out = SecureBuffer::Create(static_cast<size_t>(key.public_key().size()));
  if (!out.ok()) return out.status();
  size_t len = out->size();
  int rc = EVP_PKEY_decrypt(ctx.get(), out->data(), &len,
                            reinterpret_cast<const unsigned char*>(wrapped.data()), wrapped.size());
  ERR_clear_error();
  if (rc <= 0) {
    return absl::PermissionDeniedError("unwrap file key: this private key does not open it");
  }
  out->Shrink(len);
  return out;
}

}  // namespace nodeward::backup
