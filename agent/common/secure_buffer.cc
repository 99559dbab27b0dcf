#include "agent/common/secure_buffer.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodeward {

absl::StatusOr<SecureBuffer> SecureBuffer::Create(size_t size) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t mapped = ((size == 0 ? 1 : size) + page - 1) / page * page;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap secure buffer");
  if (mlock(p, mapped) != 0) {
    int err = errno;
    munmap(p, mapped);
    return absl::ResourceExhaustedError(
        absl::StrCat("mlock secure buffer of ", mapped, " bytes: ", strerror(err)));
  }
  madvise(p, mapped, MADV_DONTDUMP);
  return SecureBuffer(static_cast<unsigned char*>(p), size, mapped);
}

absl::StatusOr<SecureBuffer> SecureBuffer::ReadFile(const std::string& path, size_t max_size) {
  absl::StatusOr<SecureBuffer> buf = Create(max_size);
  if (!buf.ok()) return buf.status();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open key file ", path));
  size_t got = 0;
  while (true) {
    if (got == max_size) {
      close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("read key file ", path, ": larger than ", max_size, " bytes"));
    }
    ssize_t n = read(fd, buf->data() + got, max_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, absl::StrCat("read key file ", path));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  buf->Shrink(got);
  return buf;
}

SecureBuffer::SecureBuffer(SecureBuffer&& other) noexcept
    : data_(other.data_), size_(other.size_), mapped_(other.mapped_) {
  other.data_ = nullptr;
  other.size_ = other.mapped_ = 0;
}

SecureBuffer& SecureBuffer::operator=(SecureBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = other.data_;
    size_ = other.size_;
    mapped_ = other.mapped_;
    other.data_ = nullptr;
    other.size_ = other.mapped_ = 0;
  }
  return *this;
}

SecureBuffer::~SecureBuffer() { Release(); }

void SecureBuffer::Release() {
  if (data_ == nullptr) return;
  OPENSSL_cleanse(data_, mapped_);
  munlock(data_, mapped_);
  munmap(data_, mapped_);
  data_ = nullptr;
}

absl::Status EnableOpenSslSecureHeap(size_t bytes) {
  if (CRYPTO_secure_malloc_initialized()) return absl::OkStatus();
  // minsize 16: the smallest allocation, and the bitmap stays bytes/4 bits.
  switch (CRYPTO_secure_malloc_init(bytes, 16)) {
    case 1:
      return absl::OkStatus();
    case 2:
      return absl::FailedPreconditionError(absl::StrCat(
          "OpenSSL secure heap of ", bytes, " bytes is in use but not locked or guarded "
          "(RLIMIT_MEMLOCK?)"));
    default:
      return absl::InternalError(
          absl::StrCat("enable OpenSSL secure heap of ", bytes, " bytes: failed"));
  }
}

}  // namespace nodeward
