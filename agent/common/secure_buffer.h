#ifndef NODEWARD_AGENT_COMMON_SECURE_BUFFER_H_
#define NODEWARD_AGENT_COMMON_SECURE_BUFFER_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeward {

// Fixed-size memory for key material: its own pages, mlock()ed so it never
// reaches swap, MADV_DONTDUMP so it never reaches a core file, and wiped with
// OPENSSL_cleanse before it is unmapped. Move-only. Not thread-safe.
class SecureBuffer {
 public:
  // RESOURCE_EXHAUSTED if the pages cannot be mapped or locked.
  static absl::StatusOr<SecureBuffer> Create(size_t size);
  // Reads a whole file (at most `max_size` bytes) straight into secure memory.
  static absl::StatusOr<SecureBuffer> ReadFile(const std::string& path, size_t max_size);

  SecureBuffer(SecureBuffer&& other) noexcept;
  SecureBuffer& operator=(SecureBuffer&& other) noexcept;
  SecureBuffer(const SecureBuffer&) = delete;
  SecureBuffer& operator=(const SecureBuffer&) = delete;
  ~SecureBuffer();

  unsigned char* data() { return data_; }
  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  void Shrink(size_t size) { if (size < size_) size_ = size; }
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(data_), size_);
  }

 private:
  SecureBuffer(unsigned char* data, size_t size, size_t mapped)
      : data_(data), size_(size), mapped_(mapped) {}
  void Release();

  unsigned char* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;
};

// Makes OpenSSL keep the private parts of its keys in its secure heap: one
// area of `bytes` (a power of two), mlock()ed, MADV_DONTDUMP, with guard
// pages, cleansed on free. OpenSSL puts there the private numbers of RSA and
// EC keys it decodes or generates (so the agent's TLS key as gRPC loads it,
// backup keys, orchestrator keys), Ed25519/X25519 private keys, and the
// temporaries of private-key operations; without it they live in its ordinary
// heap. Call once per process, before any key is loaded or any thread starts.
// OK: enabled and locked. FAILED_PRECONDITION: enabled, but the area could not
// be locked (RLIMIT_MEMLOCK) or guarded; keys still go there. INTERNAL: not
// enabled (keys stay in the ordinary heap). When the area is full OpenSSL's
// private-key operations fail rather than fall back, so size it for the
// process's keys and concurrent handshakes.
absl::Status EnableOpenSslSecureHeap(size_t bytes);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMON_SECURE_BUFFER_H_
