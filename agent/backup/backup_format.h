#ifndef NODEWARD_AGENT_BACKUP_BACKUP_FORMAT_H_
#define NODEWARD_AGENT_BACKUP_BACKUP_FORMAT_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/backup/backup_keys.h"

namespace nodeward::backup {

// Streams: Read returns the number of bytes read, 0 only at end of input.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual absl::StatusOr<size_t> Read(char* buffer, size_t size) = 0;
  // Optional zero-copy path (a memory-mapped file): the next min(size,
  // remaining) bytes, consumed by the call and valid until the next call.
  // Sources that cannot do this keep the default and are read with Read.
  virtual bool CanView() const { return false; }
  virtual absl::StatusOr<absl::string_view> ReadView(size_t size) {
    (void)size;
    return absl::UnimplementedError("ReadView");
  }
};
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual absl::Status Write(absl::string_view data) = 0;
  // Optional zero-copy path: writes (*buffer)[offset, offset + size) and may
  // keep the buffer, leaving in its place another of the same size whose
  // contents are unspecified. The default writes a view and keeps nothing.
  virtual absl::Status WriteBuffer(std::string* buffer, size_t offset, size_t size) {
    return Write(absl::string_view(buffer->data() + offset, size));
  }
};

enum class Format { kV1, kV2 };

inline constexpr size_t kDefaultChunkSize = 1 << 20;
inline constexpr size_t kMinChunkSize = 16;
inline constexpr size_t kMaxChunkSize = 16 << 20;

// Encrypts `in` to `out` for `key`, constant memory (one chunk). v2 is the
// format of docs/backup-format.md; v1 is pghoard/rohmu's "pghoa1" (an empty
// input gives an empty output, as rohmu writes it).
absl::Status Encrypt(Format format, const RsaPublicKey& key, ByteSource* in, ByteSink* out,
                     size_t chunk_size = kDefaultChunkSize);

struct DecryptInfo {
  Format format = Format::kV2;
  // Hex key id of the key that opened the file.
  std::string key_id_hex;
};

// Decrypts either format (told apart by the magic) with whichever of `keys`
// fits. Errors: DATA_LOSS for any integrity failure (flipped bit, truncation
// at any byte, appended data, reordered chunks), PERMISSION_DENIED when no
// key opens the file, INVALID_ARGUMENT for input that is neither format or
// a malformed header, UNIMPLEMENTED for an unknown version.
//
// v2 writes to `out` only chunks whose tag verified. v1 has one tag at the
// very end: plaintext reaches `out` before it is checked, so the caller must
// treat `out` as untrusted until this returns OK (write to a temp file and
// rename, or spool) — nodewardctl does.
//
// An empty input is refused (a header is required) unless `accept_empty_v1`:
// rohmu writes an empty plaintext as an empty pghoa1 file, which cannot be
// told apart from a file truncated to nothing.
absl::Status Decrypt(const std::vector<const RsaPrivateKey*>& keys, ByteSource* in,
                     ByteSink* out, DecryptInfo* info = nullptr, bool accept_empty_v1 = false);

// The format of a file from its first bytes (at least 6), or INVALID_ARGUMENT.
absl::StatusOr<Format> DetectFormat(absl::string_view prefix);

struct HeaderInfo {
  Format format = Format::kV2;
  int version = 0;
  std::string key_id_hex;  // v2 only: v1 files do not name their key
  size_t chunk_size = 0;   // v2 only
  size_t wrapped_key_bytes = 0;
};
// Reads only the header; no key needed, nothing authenticated.
absl::StatusOr<HeaderInfo> Inspect(ByteSource* in);

// The per-file secrets. Fresh from the CSPRNG for every file; fixed only by
// the test vectors.
struct FileSecrets {
  std::string aes_key;   // 32 bytes (v2) / 16 bytes (v1)
  std::string iv;        // 16 bytes: the whole initial CTR counter block
  std::string mac_key;   // 64 bytes (v2) / 32 bytes (v1)
};

// The encryption with given secrets and given wrapped-key bytes, for test
// vectors. `key_id` is 32 raw bytes (v2 only).
absl::Status EncryptWithSecretsForTest(Format format, const FileSecrets& secrets,
                                       absl::string_view wrapped, absl::string_view key_id,
                                       ByteSource* in, ByteSink* out, size_t chunk_size);

}  // namespace nodeward::backup

#endif  // NODEWARD_AGENT_BACKUP_BACKUP_FORMAT_H_
