#include "agent/backup/backup_format.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/common/crypto.h"
#include "agent/backup/format_internal.h"
#include "agent/backup/worker.h"
#include "agent/common/status_macros.h"

namespace nodeward::backup {
namespace internal {

constexpr size_t kPiece = 128 << 10;

absl::Status EncryptV2(absl::string_view aes_key, absl::string_view iv, absl::string_view mac_key,
                       absl::string_view wrapped, absl::string_view key_id, ByteSource* in,
                       ByteSink* out, size_t chunk_size) {
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize || chunk_size % 16 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk size ", chunk_size, " out of range (16 to 16 MiB) or not a multiple of 16"));
  }
  std::string header(kMagicV2);
  header.push_back(static_cast<char>(kVersion2));
  header.push_back('\0');
  PutU16(&header, static_cast<uint16_t>(wrapped.size()));
  header.append(key_id.data(), key_id.size());
  PutU32(&header, static_cast<uint32_t>(chunk_size));
  header.append(wrapped.data(), wrapped.size());
  Hmac mac(mac_key);
  Ctr ctr(aes_key, iv);
  if (!mac.ok() || !ctr.ok()) return CryptoFailed("encrypt backup");
  if (!mac.Update(header)) return CryptoFailed("encrypt backup");
  const std::string header_tag = mac.Final();
  header.append(header_tag);
  RETURN_IF_ERROR(out->Write(header));

  // The chunk's data starts 64 bytes in, cache-line aligned for the kernel's
  // copies and AES; its 4-byte info sits just before it and its tag right
  // after, so each chunk leaves in one write.
  //
  // Pipelined over chunks with two buffers: while this thread MACs and
  // writes chunk i, the worker encrypts chunk i+1 (read first), so the
  // cipher's time and the read hide behind the MAC's (see Worker). One hand-over per
  // chunk.
  constexpr size_t kLead = 64;
  std::string cur(kLead + chunk_size + kTag, '\0');
  std::string next(kLead + chunk_size + kTag, '\0');
  Worker worker;
  // Starts reading the next chunk into `b` and encrypting it, on the worker;
  // its length and the read's outcome land in *n and *read.
  auto read_and_start = [&](std::string* b, size_t* n, absl::Status* read) {
    char* const data = b->data() + kLead;
    worker.Start([&in, &ctr, data, n, read, chunk_size] {
      const char* src = data;
      if (in->CanView()) {
        // Encrypt straight out of the source's buffer: one copy fewer. The
        // view lasts until the next read, which comes after the Wait.
        absl::StatusOr<absl::string_view> view = in->ReadView(chunk_size);
        if (!view.ok()) {
          *read = view.status();
          return false;
        }
        *n = view->size();
        src = view->data();
      } else {
        absl::StatusOr<size_t> got = ReadFull(in, data, chunk_size);
        if (!got.ok()) {
          *read = got.status();
          return false;
        }
        *n = *got;
      }
      return ctr.ApplyTo(src, data, *n);
    });
  };
  size_t n = 0, next_n = 0;
  absl::Status read, next_read, result;
  read_and_start(&cur, &n, &read);
  for (uint64_t index = 0;; ++index) {
    const bool ciphered = worker.Wait();  // chunk `index` is read and ciphertext in `cur`
    if (index > 0) {  // what the job for it wrote, now that it is done
      n = next_n;
      read = next_read;
    }
    if (!ciphered) {
      result = read.ok() ? CryptoFailed("encrypt backup") : read;
      break;
    }
    const bool final = n < chunk_size;
    if (!final) read_and_start(&next, &next_n, &next_read);
    char* const data = cur.data() + kLead;
    const uint32_t info = static_cast<uint32_t>(n) | (final ? kFinalBit : 0);
    data[-4] = static_cast<char>(info >> 24);
    data[-3] = static_cast<char>((info >> 16) & 0xff);
    data[-2] = static_cast<char>((info >> 8) & 0xff);
    data[-1] = static_cast<char>(info & 0xff);
    std::string tag;
    if (V2ChunkTagStart(&mac, header_tag, index, info)) {
      bool ok = true;
      for (size_t off = 0; ok && off < n; off += kPiece) {
        ok = mac.Update(absl::string_view(data + off, std::min(kPiece, n - off)));
      }
      if (ok) tag = mac.Final();
    }
    if (tag.size() != kTag) {
      result = CryptoFailed("encrypt backup");
    } else {
      std::memcpy(data + n, tag.data(), kTag);
      result = out->WriteBuffer(&cur, kLead - 4, 4 + n + kTag);
    }
    if (!result.ok() || final) break;
    std::swap(cur, next);
  }
  // Nothing may still be writing into a buffer when they go (a no-op when
  // nothing is pending).
  worker.Wait();
  OPENSSL_cleanse(cur.data(), cur.size());
  OPENSSL_cleanse(next.data(), next.size());
  return result;
}

absl::Status DecryptV2(const std::vector<const RsaPrivateKey*>& keys, absl::string_view magic,
                       ByteSource* in, ByteSink* out, DecryptInfo* info) {
  char fixed[kV2Fixed];
  std::memcpy(fixed, magic.data(), magic.size());
  ASSIGN_OR_RETURN(size_t got, ReadFull(in, fixed + magic.size(), kV2Fixed - magic.size()));
  if (got != kV2Fixed - magic.size()) return Corrupt("truncated in the header");
  if (static_cast<uint8_t>(fixed[4]) != kVersion2) {
    return absl::UnimplementedError(
        absl::StrCat("backup format version ", static_cast<int>(static_cast<uint8_t>(fixed[4])),
                     " is unknown to this nodeward"));
  }
  if (fixed[5] != 0) return absl::InvalidArgumentError("backup header: unknown flags set");
  const size_t wrapped_len = GetU16(fixed + 6);
  const absl::string_view key_id(fixed + 8, 32);
  const size_t chunk_size = GetU32(fixed + 40);
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize || chunk_size % 16 != 0) {
    return Corrupt(absl::StrCat("chunk size ", chunk_size, " out of range or not a multiple of 16"));
  }
  if (wrapped_len < 256 || wrapped_len > 1024) {
    return Corrupt(absl::StrCat("wrapped key length ", wrapped_len, " out of range"));
  }
  std::string header(fixed, kV2Fixed);
  std::string wrapped(wrapped_len, '\0');
  ASSIGN_OR_RETURN(got, ReadFull(in, wrapped.data(), wrapped_len));
  if (got != wrapped_len) return Corrupt("truncated in the wrapped key");
  header.append(wrapped);
  std::string header_tag(kTag, '\0');
  ASSIGN_OR_RETURN(got, ReadFull(in, header_tag.data(), kTag));
  if (got != kTag) return Corrupt("truncated in the header tag");

  // The key the header names first, then the others (a flipped key id must
  // still end as an integrity error, not as "wrong key").
  std::vector<const RsaPrivateKey*> order;
  for (const auto* k : keys) if (k->public_key().key_id() == key_id) order.push_back(k);
  for (const auto* k : keys) if (k->public_key().key_id() != key_id) order.push_back(k);
  absl::StatusOr<SecureBuffer> secret = absl::PermissionDeniedError("");
  const RsaPrivateKey* used = nullptr;
  bool named_key_failed = false;
  bool any_usable = false;
  for (const auto* k : order) {
    if (k->public_key().bits() < kMinRsaBits) continue;
    any_usable = true;
    if (k->public_key().size() != static_cast<int>(wrapped_len)) continue;
    secret = OaepUnwrap(*k, "SHA256", wrapped);
    if (secret.ok()) {
      used = k;
      break;
    }
    if (k->public_key().key_id() == key_id) named_key_failed = true;
  }
  if (used == nullptr && !any_usable) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no usable private key given: v2 backups need RSA keys of at least ", kMinRsaBits,
        " bits"));
  }
  if (used == nullptr && named_key_failed) {
    // The right key (by id) does not open it: the wrapped key was changed.
    return Corrupt("the wrapped file key does not open with the key the header names");
  }
  if (used == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("no given private key opens this backup (it names key ", HexEncode(key_id),
                     ")"));
  }
  if (secret->size() != kV2Secret) return Corrupt("unwrapped file key has the wrong size");
  const absl::string_view s = secret->view();
  Hmac mac(s.substr(48, 64));
  Ctr ctr(s.substr(0, 32), s.substr(32, 16));
  if (!mac.ok() || !ctr.ok() || !mac.Update(header)) return CryptoFailed("decrypt backup");
  if (!TagEqual(mac.Final(), header_tag)) return Corrupt("header was modified");
  if (info != nullptr) {
    info->format = Format::kV2;
    info->key_id_hex = used->public_key().key_id_hex();
  }

  // Chunk data is read to an address congruent to its input offset mod 64:
  // the kernel's copy out of the page cache then runs aligned (measured: a
  // third faster on tmpfs than a misaligned destination).
  std::string buf(chunk_size + kTag + 128, '\0');
  uint64_t pos = kV2Fixed + wrapped_len + kTag;
  std::string ctbuf;  // ciphertext, when the source cannot lend a view
  Worker worker;
  for (uint64_t index = 0;; ++index) {
    // Recomputed each time: the sink may swap buffers.
    char* const base = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64);
    char info_bytes[4];
    ASSIGN_OR_RETURN(got, ReadFull(in, info_bytes, 4));
    if (got != 4) return Corrupt(absl::StrCat("truncated before chunk ", index, " (no final chunk)"));
    pos += 4;
    const uint32_t chunk_info = GetU32(info_bytes);
    const bool final = (chunk_info & kFinalBit) != 0;
    const size_t len = chunk_info & ~kFinalBit;
    // One encoding per plaintext: a final chunk is shorter than C (an input
    // that is a multiple of C ends with an empty final chunk).
    if (len > chunk_size || (!final && len != chunk_size) || (final && len == chunk_size)) {
      return Corrupt(absl::StrCat("chunk ", index, " has a bad length"));
    }
    char* const data = base + pos % 64;
    absl::string_view framed;
    if (in->CanView()) {
      ASSIGN_OR_RETURN(framed, in->ReadView(len + kTag));
      got = framed.size();
    } else {
      // Its own buffer, not `data`: the cipher writes the plaintext there
      // while the MAC still reads the ciphertext.
      if (ctbuf.empty()) ctbuf.assign(buf.size(), '\0');
      char* const ct_at = ctbuf.data() + (64 - reinterpret_cast<uintptr_t>(ctbuf.data()) % 64) +
                          pos % 64;
      ASSIGN_OR_RETURN(got, ReadFull(in, ct_at, len + kTag));
      framed = absl::string_view(ct_at, got);
    }
    if (got != len + kTag) return Corrupt(absl::StrCat("truncated in chunk ", index));
    pos += len + kTag;
    const absl::string_view ct = framed.substr(0, len);
    // The MAC here and the cipher on the worker read the same private copy
    // of the chunk at the same time; the plaintext stays in this buffer and
    // is released only once the whole chunk's tag checks out.
    worker.Start([&ctr, &ct, data, len] { return ctr.ApplyTo(ct.data(), data, len); });
    bool mac_ok = V2ChunkTagStart(&mac, header_tag, index, chunk_info);
    for (size_t off = 0; mac_ok && off < len; off += kPiece) {
      mac_ok = mac.Update(ct.substr(off, std::min(kPiece, len - off)));
    }
    const bool ctr_ok = worker.Wait();
    if (!mac_ok || !ctr_ok) {
      OPENSSL_cleanse(buf.data(), buf.size());
      return CryptoFailed("decrypt backup");
    }
    if (!TagEqual(mac.Final(), framed.substr(len, kTag))) {
      OPENSSL_cleanse(buf.data(), buf.size());
      return Corrupt(absl::StrCat("chunk ", index, " fails authentication (modified, reordered or "
                                  "from another file)"));
    }
    RETURN_IF_ERROR(out->WriteBuffer(&buf, static_cast<size_t>(data - buf.data()), len));
    if (final) break;
  }
  OPENSSL_cleanse(buf.data(), buf.size());
  char extra;
  ASSIGN_OR_RETURN(got, in->Read(&extra, 1));
  if (got != 0) return Corrupt("data after the final chunk");
  return absl::OkStatus();
}

// ---- v1 ("pghoa1") ----

absl::StatusOr<SecureBuffer> Random(size_t n) {
  ASSIGN_OR_RETURN(SecureBuffer b, SecureBuffer::Create(n));
  if (RAND_priv_bytes(b.data(), static_cast<int>(n)) != 1) {
    return absl::InternalError("draw file key: OpenSSL's CSPRNG failed");
  }
  return b;
}

}  // namespace internal

using internal::Corrupt;
using internal::DecryptV1;
using internal::DecryptV2;
using internal::EncryptV1;
using internal::EncryptV2;
using internal::GetU16;
using internal::GetU32;
using internal::kMagicV1;
using internal::kMagicV2;
using internal::kV1Secret;
using internal::kV2Fixed;
using internal::kV2Secret;
using internal::Random;
using internal::ReadFull;

absl::StatusOr<Format> DetectFormat(absl::string_view prefix) {
  if (prefix.substr(0, kMagicV2.size()) == kMagicV2) return Format::kV2;
  if (prefix.substr(0, kMagicV1.size()) == kMagicV1) return Format::kV1;
  return absl::InvalidArgumentError("not a nodeward (NWBK) or pghoard (pghoa1) backup");
}

absl::Status Encrypt(Format format, const RsaPublicKey& key, ByteSource* in, ByteSink* out,
                     size_t chunk_size) {
  if (key.bits() < kMinRsaBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("encrypt backup: RSA key of ", key.bits(), " bits is too short"));
  }
  const size_t n = format == Format::kV2 ? kV2Secret : kV1Secret;
  ASSIGN_OR_RETURN(SecureBuffer secret, Random(n));
  const absl::string_view s = secret.view();
  if (format == Format::kV2) {
    ASSIGN_OR_RETURN(std::string wrapped, OaepWrap(key, "SHA256", s));
    return EncryptV2(s.substr(0, 32), s.substr(32, 16), s.substr(48, 64), wrapped, key.key_id(),
                     in, out, chunk_size);
  }
  ASSIGN_OR_RETURN(std::string wrapped, OaepWrap(key, "SHA1", s));
  return EncryptV1(s.substr(0, 16), s.substr(16, 16), s.substr(32, 32), wrapped, in, out);
}

absl::Status Decrypt(const std::vector<const RsaPrivateKey*>& keys, ByteSource* in,
                     ByteSink* out, DecryptInfo* info, bool accept_empty_v1) {
  char magic[6];
  ASSIGN_OR_RETURN(size_t got, ReadFull(in, magic, 4));
  if (got == 0) {
    if (!accept_empty_v1) return Corrupt("empty input where a backup header is required");
    if (info != nullptr) info->format = Format::kV1;
    return absl::OkStatus();
  }
  if (got < 4) return Corrupt("truncated in the magic");
  if (absl::string_view(magic, 4) == kMagicV2) {
    return DecryptV2(keys, absl::string_view(magic, 4), in, out, info);
  }
  ASSIGN_OR_RETURN(size_t more, ReadFull(in, magic + 4, 2));
  const absl::string_view seen(magic, 4 + more);
  if (seen == kMagicV1) return DecryptV1(keys, seen, in, out, info);
  if (more < 2 && kMagicV1.substr(0, seen.size()) == seen) return Corrupt("truncated in the magic");
  return absl::InvalidArgumentError("not a nodeward (NWBK) or pghoard (pghoa1) backup");
}

absl::StatusOr<HeaderInfo> Inspect(ByteSource* in) {
  char head[kV2Fixed];
  ASSIGN_OR_RETURN(size_t got, ReadFull(in, head, kV2Fixed));
  ASSIGN_OR_RETURN(Format f, DetectFormat(absl::string_view(head, got)));
  HeaderInfo h;
  h.format = f;
  if (f == Format::kV1) {
    if (got < 8) return Corrupt("truncated in the header");
    h.version = 1;
    h.wrapped_key_bytes = GetU16(head + 6);
    return h;
  }
  if (got < kV2Fixed) return Corrupt("truncated in the header");
  h.version = static_cast<uint8_t>(head[4]);
  h.wrapped_key_bytes = GetU16(head + 6);
  h.key_id_hex = HexEncode(absl::string_view(head + 8, 32));
  h.chunk_size = GetU32(head + 40);
  return h;
}

absl::Status EncryptWithSecretsForTest(Format format, const FileSecrets& secrets,
                                       absl::string_view wrapped, absl::string_view key_id,
                                       ByteSource* in, ByteSink* out, size_t chunk_size) {
  if (format == Format::kV2) {
    return EncryptV2(secrets.aes_key, secrets.iv, secrets.mac_key, wrapped, key_id, in, out,
                     chunk_size);
  }
  return EncryptV1(secrets.aes_key, secrets.iv, secrets.mac_key, wrapped, in, out);
}

}  // namespace nodeward::backup
