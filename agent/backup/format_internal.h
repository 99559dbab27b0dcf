#ifndef NODEWARD_AGENT_BACKUP_FORMAT_INTERNAL_H_
#define NODEWARD_AGENT_BACKUP_FORMAT_INTERNAL_H_

// Pieces both backup formats are made of (backup_format.cc: v2 and the
// public entry points; backup_format_v1.cc: pghoard's pghoa1): sizes,
// big-endian fields, AES-256-CTR and HMAC-SHA256 over OpenSSL's EVP, the
// constant-time tag compare. Internal to agent/backup.

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "agent/backup/backup_format.h"
#include "agent/common/status_macros.h"

namespace nodeward::backup::internal {

inline constexpr absl::string_view kMagicV1 = "pghoa1";
inline constexpr absl::string_view kMagicV2 = "NWBK";
inline constexpr uint8_t kVersion2 = 2;
inline constexpr size_t kTag = 32;
// v2 fixed header before the wrapped key: magic, version, flags,
// wrapped length, key id, chunk size.
inline constexpr size_t kV2Fixed = 4 + 1 + 1 + 2 + 32 + 4;
inline constexpr size_t kV2Secret = 32 + 16 + 64;
inline constexpr size_t kV1Secret = 16 + 16 + 32;
inline constexpr uint32_t kFinalBit = 0x80000000u;
inline constexpr size_t kV1Block = 1 << 20;

inline void PutU16(std::string* s, uint16_t v) {
  s->push_back(static_cast<char>(v >> 8));
  s->push_back(static_cast<char>(v & 0xff));
}
inline void PutU32(std::string* s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void PutU64(std::string* s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline uint32_t GetU32(const char* p) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(p[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(p[3]));
}
inline uint16_t GetU16(const char* p) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]));
}

inline absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("backup integrity check failed: ", what));
}

// Reads exactly `n` bytes unless the input ends first; returns how many.
inline absl::StatusOr<size_t> ReadFull(ByteSource* in, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ASSIGN_OR_RETURN(size_t r, in->Read(buf + got, n - got));
    if (r == 0) break;
    got += r;
  }
  return got;
}

// AES-CTR over the whole file: the 16-byte IV is the full initial counter
// block, incremented as one 128-bit big-endian integer (OpenSSL semantics).
class Ctr {
 public:
  Ctr(absl::string_view key, absl::string_view iv) : ctx_(EVP_CIPHER_CTX_new()) {
    const EVP_CIPHER* c = key.size() == 32 ? EVP_aes_256_ctr() : EVP_aes_128_ctr();
    ok_ = ctx_ != nullptr &&
          EVP_CipherInit_ex(ctx_, c, nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                            reinterpret_cast<const unsigned char*>(iv.data()), 1) == 1;
  }
  ~Ctr() { EVP_CIPHER_CTX_free(ctx_); }
  bool ok() const { return ok_; }
  // In place.
  bool Apply(char* data, size_t n) { return ApplyTo(data, data, n); }
  bool ApplyTo(const char* in, char* out, size_t n) {
    int outl = 0;
    return n == 0 || EVP_CipherUpdate(ctx_, reinterpret_cast<unsigned char*>(out), &outl,
                                      reinterpret_cast<const unsigned char*>(in),
                                      static_cast<int>(n)) == 1;
  }

 private:
  EVP_CIPHER_CTX* ctx_;
  bool ok_ = false;
};

class Hmac {
 public:
  explicit Hmac(absl::string_view key) {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ctx_ = mac_ == nullptr ? nullptr : EVP_MAC_CTX_new(mac_);
    char digest[] = "SHA256";
    params_[0] = OSSL_PARAM_construct_utf8_string("digest", digest, 0);
    params_[1] = OSSL_PARAM_construct_end();
    ok_ = ctx_ != nullptr &&
          EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                       params_) == 1;
  }
  ~Hmac() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }
  bool ok() const { return ok_; }
  // Starts a new MAC with the same key.
  bool Restart() { return EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1; }
  bool Update(absl::string_view d) {
    return EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(d.data()), d.size()) == 1;
  }
  std::string Final() {
    unsigned char out[kTag];
    size_t len = 0;
    if (EVP_MAC_final(ctx_, out, &len, sizeof(out)) != 1) return std::string();
    return std::string(reinterpret_cast<char*>(out), len);
  }

 private:
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
  OSSL_PARAM params_[2];
  bool ok_ = false;
};

inline bool TagEqual(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

inline absl::Status CryptoFailed(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": OpenSSL failed"));
}

// ---- v2 ----

inline bool V2ChunkTagStart(Hmac* mac, absl::string_view header_tag, uint64_t index, uint32_t info) {
  std::string prefix(header_tag);
  PutU64(&prefix, index);
  PutU32(&prefix, info);
  return mac->Restart() && mac->Update(prefix);
}

// The cipher and the MAC take a chunk in pieces this size, so the MAC reads
// what AES just wrote while it is still in L1/L2 instead of streaming the whole
// chunk through memory twice (the chunk is larger than this CPU's 1 MiB L2).

// backup_format_v1.cc
absl::Status EncryptV1(absl::string_view aes_key, absl::string_view iv, absl::string_view mac_key,
                       absl::string_view wrapped, ByteSource* in, ByteSink* out);
absl::Status DecryptV1(const std::vector<const RsaPrivateKey*>& keys, absl::string_view magic,
                       ByteSource* in, ByteSink* out, DecryptInfo* info);

}  // namespace nodeward::backup::internal

#endif  // NODEWARD_AGENT_BACKUP_FORMAT_INTERNAL_H_
