// pghoard's "pghoa1" format (docs/backup-format.md, v1): read for the
// backups pghoard made, written only when asked for (--format v1).
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/backup/backup_format.h"
#include "agent/backup/format_internal.h"
#include "agent/common/status_macros.h"

namespace nodeward::backup::internal {

absl::Status EncryptV1(absl::string_view aes_key, absl::string_view iv, absl::string_view mac_key,
                       absl::string_view wrapped, ByteSource* in, ByteSink* out) {
  Hmac mac(mac_key);
  Ctr ctr(aes_key, iv);
  if (!mac.ok() || !ctr.ok()) return CryptoFailed("encrypt backup");
  std::string buf(kV1Block, '\0');
  bool started = false;
  while (true) {
    ASSIGN_OR_RETURN(size_t n, ReadFull(in, buf.data(), buf.size()));
    if (n == 0) break;
    if (!started) {
      // rohmu writes the header with the first data: empty input, empty file.
      std::string header(kMagicV1);
      PutU16(&header, static_cast<uint16_t>(wrapped.size()));
      header.append(wrapped.data(), wrapped.size());
      RETURN_IF_ERROR(out->Write(header));
      started = true;
    }
    if (!ctr.Apply(buf.data(), n) || !mac.Update(absl::string_view(buf.data(), n))) {
      return CryptoFailed("encrypt backup");
    }
    RETURN_IF_ERROR(out->Write(absl::string_view(buf.data(), n)));
    if (n < buf.size()) break;
  }
  OPENSSL_cleanse(buf.data(), buf.size());
  if (started) RETURN_IF_ERROR(out->Write(mac.Final()));
  return absl::OkStatus();
}

absl::Status DecryptV1(const std::vector<const RsaPrivateKey*>& keys, absl::string_view magic,
                       ByteSource* in, ByteSink* out, DecryptInfo* info) {
  char head[8];
  std::memcpy(head, magic.data(), magic.size());
  ASSIGN_OR_RETURN(size_t got, ReadFull(in, head + magic.size(), 8 - magic.size()));
  if (got != 8 - magic.size()) return Corrupt("truncated in the header");
  const size_t wrapped_len = GetU16(head + 6);
  if (wrapped_len < 128 || wrapped_len > 1024) {
    return Corrupt(absl::StrCat("wrapped key length ", wrapped_len, " out of range"));
  }
  std::string wrapped(wrapped_len, '\0');
  ASSIGN_OR_RETURN(got, ReadFull(in, wrapped.data(), wrapped_len));
  if (got != wrapped_len) return Corrupt("truncated in the wrapped key");
  // v1 files do not name their key: try every key of the right size.
  absl::StatusOr<SecureBuffer> secret = absl::PermissionDeniedError("");
  const RsaPrivateKey* used = nullptr;
  for (const auto* k : keys) {
    if (k->public_key().size() != static_cast<int>(wrapped_len)) continue;
    secret = OaepUnwrap(*k, "SHA1", wrapped);
    if (secret.ok()) {
      used = k;
      break;
    }
  }
  if (used == nullptr) {
    return absl::PermissionDeniedError("no given private key opens this pghoa1 backup");
  }
  if (secret->size() != kV1Secret) return Corrupt("unwrapped file key has the wrong size");
  const absl::string_view s = secret->view();
  Hmac mac(s.substr(32, 32));
  Ctr ctr(s.substr(0, 16), s.substr(16, 16));
  if (!mac.ok() || !ctr.ok()) return CryptoFailed("decrypt backup");
  if (info != nullptr) {
    info->format = Format::kV1;
    info->key_id_hex = used->public_key().key_id_hex();
  }
  // The tag is the last 32 bytes: hold back 32 bytes until the input ends.
  std::string buf(kV1Block + kTag, '\0');
  size_t held = 0;
  while (true) {
    ASSIGN_OR_RETURN(size_t n, ReadFull(in, buf.data() + held, kV1Block));
    held += n;
    if (held > kTag) {
      const size_t body = held - kTag;
      if (!mac.Update(absl::string_view(buf.data(), body)) || !ctr.Apply(buf.data(), body)) {
        return CryptoFailed("decrypt backup");
      }
      RETURN_IF_ERROR(out->Write(absl::string_view(buf.data(), body)));
      std::memmove(buf.data(), buf.data() + body, kTag);
      held = kTag;
    }
    if (n < kV1Block) break;
  }
  if (held < kTag) return Corrupt("truncated: the file ends before its tag");
  if (!TagEqual(mac.Final(), absl::string_view(buf.data(), kTag))) {
    return Corrupt("tag mismatch (modified, truncated or appended data)");
  }
  OPENSSL_cleanse(buf.data(), buf.size());
  return absl::OkStatus();
}

}  // namespace nodeward::backup::internal
