#include "tools/nodewardctl/ring_source.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace nodeward {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kReadStep = 1 << 20;  // one read(2) at most this long

// Sleeps 20 us doubling to 1 ms while there is nothing to do.
class Backoff {
 public:
  void Reset() { next_ = absl::Microseconds(20); }
  void Wait() {
    absl::SleepFor(next_);
    next_ = std::min(next_ * 2, absl::Milliseconds(1));
  }

 private:
  absl::Duration next_ = absl::Microseconds(20);
};

}  // namespace

absl::StatusOr<std::unique_ptr<RingSource>> RingSource::Start(int fd, size_t usual_view) {
  // Four times the usual view (a default 1 MiB chunk and its tag), whole
  // pages: the reader keeps working while the consumer holds a view. Larger
  // views (chunks above a quarter of the ring) are assembled in a scratch
  // buffer instead.
  size_t ring = std::max<size_t>(4 * usual_view, 4u << 20);
  ring = (ring + kPage - 1) / kPage * kPage;
  int mem = memfd_create("nodewardctl-backup-input", MFD_CLOEXEC);
  if (mem < 0) return absl::ErrnoToStatus(errno, "create input ring");
  if (ftruncate(mem, static_cast<off_t>(ring)) != 0) {
    close(mem);
    return absl::ErrnoToStatus(errno, "size input ring");
  }
  void* area = mmap(nullptr, 2 * ring, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) {
    close(mem);
    return absl::ErrnoToStatus(errno, "reserve input ring");
  }
  char* base = static_cast<char*>(area);
  if (mmap(base, ring, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mem, 0) == MAP_FAILED ||
      mmap(base + ring, ring, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mem, 0) ==
          MAP_FAILED) {
    const int err = errno;
    munmap(base, 2 * ring);
    close(mem);
    return absl::ErrnoToStatus(err, "map input ring");
  }
  close(mem);  // the mappings keep it; nobody can open it by fd any more
  return std::unique_ptr<RingSource>(new RingSource(fd, base, ring));
}

RingSource::RingSource(int fd, char* base, size_t ring) : fd_(fd), base_(base), ring_(ring) {
  reader_ = std::thread([this] { Fill(); });
}

RingSource::~RingSource() {
  stop_.store(true);
  if (reader_.joinable()) reader_.join();
  // The input may be plaintext (encrypt): wipe what was ever written.
  OPENSSL_cleanse(base_, static_cast<size_t>(std::min<uint64_t>(written_.load(), ring_)));
  munmap(base_, 2 * ring_);
  OPENSSL_cleanse(scratch_.data(), scratch_.size());
}

void RingSource::Fill() {
  Backoff idle;
  while (!stop_.load(std::memory_order_relaxed)) {
    const uint64_t w = written_.load(std::memory_order_relaxed);
    const uint64_t free = ring_ - (w - consumed_.load(std::memory_order_acquire));
    if (free == 0) {
      idle.Wait();
      continue;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(free, kReadStep));
    const ssize_t r = read(fd_, base_ + w % ring_, want);  // contiguous: the ring is mirrored
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r < 0) {
        absl::MutexLock lock(&mu_);
        error_ = absl::ErrnoToStatus(errno, "read backup input");
      }
      done_.store(true, std::memory_order_release);
      return;
    }
    idle.Reset();
    written_.store(w + static_cast<uint64_t>(r), std::memory_order_release);
  }
}

absl::StatusOr<size_t> RingSource::Await(size_t n) {
  // The consumer is done with the view it held.
  pos_ += held_;
  held_ = 0;
  consumed_.store(pos_, std::memory_order_release);
  Backoff idle;
  while (true) {
    const uint64_t have = written_.load(std::memory_order_acquire) - pos_;
    if (have >= n) return n;
    if (done_.load(std::memory_order_acquire)) {
      // written_ is final once done_ is set.
      const uint64_t last = written_.load(std::memory_order_acquire) - pos_;
      absl::MutexLock lock(&mu_);
      if (!error_.ok()) return error_;
      return static_cast<size_t>(std::min<uint64_t>(last, n));
    }
    idle.Wait();
  }
}

absl::StatusOr<absl::string_view> RingSource::ReadView(size_t n) {
  if (n > ring_ / 2) {
    // Larger than the ring can hold beside the reader: copy it out piece by
    // piece (still one copy of the bytes, still private memory).
    if (scratch_.size() < n) {
      OPENSSL_cleanse(scratch_.data(), scratch_.size());
      scratch_.assign(n, '\0');
    }
    size_t got = 0;
    while (got < n) {
      absl::StatusOr<size_t> r = Read(scratch_.data() + got, n - got);
      if (!r.ok()) return r.status();
      if (*r == 0) break;
      got += *r;
    }
    return absl::string_view(scratch_.data(), got);
  }
  absl::StatusOr<size_t> k = Await(n);
  if (!k.ok()) return k.status();
  held_ = *k;
  return absl::string_view(base_ + pos_ % ring_, *k);
}

absl::StatusOr<size_t> RingSource::Read(char* buffer, size_t n) {
  // Whatever is there, up to n (at least one byte unless the input ended).
  pos_ += held_;
  held_ = 0;
  consumed_.store(pos_, std::memory_order_release);
  const uint64_t there = written_.load(std::memory_order_acquire) - pos_;
  absl::StatusOr<size_t> k =
      Await(there > 0 ? static_cast<size_t>(std::min<uint64_t>(there, n)) : std::min<size_t>(n, 1));
  if (!k.ok()) return k.status();
  if (*k == 0) return size_t{0};  // the end of the input
  // Everything that arrived meanwhile, not just the byte waited for.
  const size_t take = static_cast<size_t>(
      std::min<uint64_t>(written_.load(std::memory_order_acquire) - pos_, n));
  std::memcpy(buffer, base_ + pos_ % ring_, take);
  held_ = take;
  return take;
}

}  // namespace nodeward
