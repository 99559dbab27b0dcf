#ifndef NODEWARD_TOOLS_NODEWARDCTL_BACKUP_IO_H_
#define NODEWARD_TOOLS_NODEWARDCTL_BACKUP_IO_H_

// The byte sources and sinks `nodewardctl backup` streams through: plain
// and prefixed fd sources, a sink writing on its own thread, the output
// file that only appears (linked from O_TMPFILE) once everything verified,
// and an in-memory sink.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/backup/backup_format.h"
#include "agent/common/status_macros.h"

namespace nodeward::ctl {

using backup::ByteSink;
using backup::ByteSource;

class FdSource final : public ByteSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    while (true) {
      ssize_t r = read(fd_, buf, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) return absl::ErrnoToStatus(errno, "read backup input");
    }
  }

 private:
  int fd_;
};

// The helper threads below never make the cipher's thread wake them: on this
// VM a futex wake-up (and the IPI behind it) cost the cipher ~1% per 1 MiB
// chunk. They poll instead, sleeping 50 us doubling to 2 ms while idle (so a
// stalled pipe costs ~500 wake-ups a second of the helper's own), and are
// woken directly only to stop.
class IdleBackoff {
 public:
  void Reset() { next_ = kMin; }
  absl::Duration Next() {
    absl::Duration d = next_;
    next_ = std::min(next_ * 2, kMax);
    return d;
  }

 private:
  static constexpr absl::Duration kMin = absl::Microseconds(50);
  static constexpr absl::Duration kMax = absl::Milliseconds(2);
  absl::Duration next_ = kMin;
};

// Bytes already read (to tell the format) followed by the rest.
class PrefixSource final : public ByteSource {
 public:
  PrefixSource(std::string prefix, ByteSource* rest) : prefix_(std::move(prefix)), rest_(rest) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (pos_ < prefix_.size()) {
      size_t k = std::min(n, prefix_.size() - pos_);
      std::memcpy(buf, prefix_.data() + pos_, k);
      pos_ += k;
      return k;
    }
    return rest_->Read(buf, n);
  }
  bool CanView() const override { return rest_->CanView(); }
  absl::StatusOr<absl::string_view> ReadView(size_t n) override {
    if (pos_ >= prefix_.size()) return rest_->ReadView(n);
    // Rare: a view that starts inside the prefix is assembled in a buffer.
    scratch_.resize(n);
    size_t got = 0;
    while (got < n) {
      ASSIGN_OR_RETURN(size_t r, Read(scratch_.data() + got, n - got));
      if (r == 0) break;
      got += r;
    }
    return absl::string_view(scratch_.data(), got);
  }

 private:
  std::string scratch_;
  std::string prefix_;
  size_t pos_ = 0;
  ByteSource* rest_;
};

class FdSink final : public ByteSink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  absl::Status Write(absl::string_view d) override {
    while (!d.empty()) {
      ssize_t w = write(fd_, d.data(), d.size());
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return absl::ErrnoToStatus(errno, "write backup output");
      d.remove_prefix(static_cast<size_t>(w));
    }
    return absl::OkStatus();
  }

 private:
  int fd_;
};

// Output handed to a writer thread: the cipher stays on one thread, and the
// kernel's share of a write (page-cache allocation and copy, ~0.4 s per GiB
// on tmpfs here) runs beside it instead of after it, as the second process of
// an `openssl enc | openssl dgst` pipeline does. Chunk buffers are taken over
// whole (WriteBuffer), small writes are gathered; memory is bounded: at most
// kBuffers buffers ever exist, and they circulate (a writer that falls behind
// makes the caller wait for a written buffer rather than fault in a new one).
// The writer thread makes the buffers first (`buffer_size` bytes each), so
// their page faults and zeroing happen on its core, not the cipher's.
// The first write error is kept and returned by the next write or by Finish.
// With `plaintext` (decrypt hands plaintext through here) buffers are wiped
// when done with; encrypt hands over ciphertext only.
class ThreadedFdSink final : public ByteSink {
 public:
  ThreadedFdSink(int fd, size_t buffer_size, bool plaintext)
      : direct_(fd), buffer_size_(buffer_size), plaintext_(plaintext),
        writer_([this] { Run(); }) {}
  ~ThreadedFdSink() override {
    Finish().IgnoreError();
    Wipe(&current_);
    for (std::string& b : pool_) Wipe(&b);
  }

  absl::Status Write(absl::string_view d) override {
    while (!d.empty()) {
      if (current_.capacity() < kGather) {
        ASSIGN_OR_RETURN(current_, TakeBuffer());
        current_.clear();
        current_.reserve(kGather);
      }
      size_t k = std::min(d.size(), kGather - current_.size());
      current_.append(d.data(), k);
      d.remove_prefix(k);
      if (current_.size() == kGather) Hand(std::move(current_), 0, kGather);
    }
    return absl::OkStatus();
  }

  absl::Status WriteBuffer(std::string* buffer, size_t offset, size_t size) override {
    if (!current_.empty()) {
      const size_t n = current_.size();
      Hand(std::move(current_), 0, n);
    }
    current_ = std::string();
    ASSIGN_OR_RETURN(std::string replacement, TakeBuffer());
    replacement.resize(buffer->size());
    std::swap(*buffer, replacement);
    Hand(std::move(replacement), offset, size);
    return absl::OkStatus();
  }

  // Writes what is left and waits for the writer; returns the first error.
  absl::Status Finish() {
    if (!writer_.joinable()) return final_;
    if (!current_.empty()) {
      const size_t n = current_.size();
      Hand(std::move(current_), 0, n);
    }
    current_ = std::string();
    {
      absl::MutexLock l(&mu_);
      done_ = true;
    }
    writer_.join();
    absl::MutexLock l(&mu_);
    final_ = error_;
    return final_;
  }

 private:
  static constexpr size_t kGather = 1 << 20;
  static constexpr size_t kBuffers = 9;  // the caller's own buffer not counted
  struct Piece {
    std::string buf;
    size_t offset, size;
  };

  void Wipe(std::string* b) const {
    if (plaintext_) OPENSSL_cleanse(b->data(), b->size());
  }
  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !error_.ok() || !pool_.empty() || allocated_ < kBuffers;
  }

  // A written buffer back from the writer, or a new one while fewer than
  // kBuffers exist; waits for one otherwise.
  absl::StatusOr<std::string> TakeBuffer() {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(this, &ThreadedFdSink::HasRoom));
    if (!error_.ok()) return error_;
    if (pool_.empty()) {
      ++allocated_;
      return std::string();
    }
    std::string b = std::move(pool_.back());
    pool_.pop_back();
    return b;
  }
  void Hand(std::string buf, size_t offset, size_t size) {
    absl::MutexLock l(&mu_);
    queue_.push_back(Piece{std::move(buf), offset, size});
  }

  void Prefill() {
    while (true) {
      {
        absl::MutexLock l(&mu_);
        if (done_ || allocated_ >= kBuffers) return;
        ++allocated_;
      }
      std::string b(buffer_size_, '\0');
      absl::MutexLock l(&mu_);
      pool_.push_back(std::move(b));
    }
  }

  // Polls the queue (see IdleBackoff): handing a buffer over never wakes it.
  void Run() {
    Prefill();
    IdleBackoff idle;
    while (true) {
      Piece p;
      {
        absl::MutexLock l(&mu_);
        if (queue_.empty()) {
          if (done_) return;
          mu_.AwaitWithTimeout(absl::Condition(&done_), idle.Next());
          continue;
        }
        idle.Reset();
        p = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::Status s = error_ok() ? direct_.Write(absl::string_view(p.buf).substr(p.offset, p.size))
                                  : absl::OkStatus();
      absl::MutexLock l(&mu_);
      if (!s.ok() && error_.ok()) error_ = s;
      pool_.push_back(std::move(p.buf));
    }
  }
  bool error_ok() {
    absl::MutexLock l(&mu_);
    return error_.ok();
  }

  FdSink direct_;
  const size_t buffer_size_;
  const bool plaintext_;
  std::string current_;  // small writes gathered here (the caller's thread only)
  absl::Mutex mu_;
  std::deque<Piece> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> pool_ ABSL_GUARDED_BY(mu_);
  size_t allocated_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  absl::Status final_;
  std::thread writer_;
};

// --out FILE. A regular file (or a new one) is written to an unnamed temp
// file in the same directory (O_TMPFILE: no name exists until it is linked,
// so no failure, not even SIGKILL, leaves partial or unverified output
// behind) and linked in place only on success. A target that exists and is
// not a regular file (a device such as /dev/null, a FIFO) is written
// directly and never replaced (fcf3c42 renamed a 0600 file over /dev/null);
// a symlink is refused. `direct()` tells the caller that bytes reach the
// target as they are written.
class OutputFile {
 public:
  absl::Status Open(const std::string& path) {
    path_ = path;
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode)) {
        return absl::FailedPreconditionError(
            absl::StrCat("--out ", path, " is a symlink: give the file itself"));
      }
      if (!S_ISREG(st.st_mode)) {
        fd_ = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd_ < 0) return absl::ErrnoToStatus(errno, "open " + path);
        direct_ = true;
        return absl::OkStatus();
      }
    } else if (errno != ENOENT) {
      return absl::ErrnoToStatus(errno, "stat " + path);
    }
    const size_t slash = path.rfind('/');
    dir_ = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    fd_ = open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd_ < 0) return absl::ErrnoToStatus(errno, "create an unnamed file in " + dir_);
    return absl::OkStatus();
  }
  int fd() const { return fd_; }
  bool direct() const { return direct_; }
  absl::Status Commit() {
    if (direct_) return absl::OkStatus();
    if (fsync(fd_) != 0) return absl::ErrnoToStatus(errno, "fsync output for " + path_);
    // linkat cannot replace: link under a fresh name, then rename over.
    std::string tmp = absl::StrCat(path_, ".nwtmp-", getpid());
    const std::string proc = absl::StrCat("/proc/self/fd/", fd_);
    unlink(tmp.c_str());
    if (linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      return absl::ErrnoToStatus(errno, "link output to " + tmp);
    }
    if (rename(tmp.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      unlink(tmp.c_str());
      return absl::ErrnoToStatus(err, "rename to " + path_);
    }
    int d = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
      (void)fsync(d);
      close(d);
    }
    return absl::OkStatus();
  }
  ~OutputFile() {
    if (fd_ >= 0) close(fd_);  // an unlinked O_TMPFILE is gone with its fd
  }

 private:
  std::string path_, dir_;
  int fd_ = -1;
  bool direct_ = false;
};

// v1 plaintext whose one tag comes last, held in memory until it verifies
// when it cannot go to an unnamed temp file (stdout, a device, a FIFO):
// never plaintext on a disk (fcf3c42 spooled it to tmpfile() on the root
// disk). Bounded: beyond kMaxV1Spool the decrypt is refused.
class MemorySink final : public ByteSink {
 public:
  static constexpr size_t kMaxV1Spool = 64 << 20;
  ~MemorySink() override { OPENSSL_cleanse(data_.data(), data_.size()); }
  absl::Status Write(absl::string_view d) override {
    if (data_.size() + d.size() > kMaxV1Spool) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "a v1 backup larger than ", kMaxV1Spool >> 20,
          " MiB cannot be verified before release to stdout or a non-regular file: decrypt "
          "to a regular --out FILE"));
    }
    if (data_.capacity() < data_.size() + d.size()) {
      std::string bigger;
      bigger.reserve(std::max(data_.size() + d.size(), 2 * data_.capacity()));
      bigger.append(data_);
      OPENSSL_cleanse(data_.data(), data_.size());
      data_.swap(bigger);
    }
    data_.append(d.data(), d.size());
    return absl::OkStatus();
  }
  absl::string_view data() const { return data_; }

 private:
  std::string data_;
};

}  // namespace nodeward::ctl

#endif  // NODEWARD_TOOLS_NODEWARDCTL_BACKUP_IO_H_
