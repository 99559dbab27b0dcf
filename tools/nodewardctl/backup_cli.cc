#include "tools/nodewardctl/backup_cli.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdio>
#include <deque>
#include <iostream>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/backup/backup_format.h"
#include "agent/common/status_macros.h"
#include "tools/nodewardctl/ring_source.h"

namespace nodeward {
namespace {

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

std::string Get(const std::multimap<std::string, std::string>& o, const std::string& k) {
  auto it = o.find(k);
  return it == o.end() ? std::string() : it->second;
}

int ExitCode(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kDataLoss:
      return 2;
    case absl::StatusCode::kPermissionDenied:
      return 3;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kUnimplemented:
      return 4;
    default:
      return 1;
  }
}

int Fail(const std::string& verb, const absl::Status& s) {
  std::cerr << "nodewardctl backup " << verb << ": " << s.message() << "\n";
  return ExitCode(s);
}

absl::StatusOr<int> OpenInput(const std::multimap<std::string, std::string>& o) {
  std::string in = Get(o, "in");
  if (in.empty() || in == "-") return 0;
  int fd = open(in.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "open " + in);
  return fd;
}

absl::Status WriteKeyFile(const std::string& path, absl::string_view data, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return absl::ErrnoToStatus(errno, "create " + path);
  FdSink sink(fd);
  absl::Status s = sink.Write(data);
  if (s.ok() && fsync(fd) != 0) s = absl::ErrnoToStatus(errno, "fsync " + path);
  close(fd);
  return s;
}

int Keygen(const std::multimap<std::string, std::string>& o) {
  std::string prefix = Get(o, "out");
  if (prefix.empty()) return Fail("keygen", absl::InvalidArgumentError("--out PREFIX is required"));
  auto key = backup::RsaPrivateKey::Generate();
  if (!key.ok()) return Fail("keygen", key.status());
  auto pem = key->ToPkcs8Pem();
  if (!pem.ok()) return Fail("keygen", pem.status());
  absl::Status s = WriteKeyFile(prefix + ".key", pem->view(), 0600);
  if (s.ok()) s = WriteKeyFile(prefix + ".pub", key->public_key().ToPem(), 0644);
  if (!s.ok()) return Fail("keygen", s);
  std::cout << "key_id " << key->public_key().key_id_hex() << "\n"
            << "wrote " << prefix << ".key (RSA-3072 private, PKCS#8, 0600) and " << prefix
            << ".pub (public, SPKI)\n";
  return 0;
}

int Encrypt(const std::multimap<std::string, std::string>& o) {
  std::string fmt = Get(o, "format");
  backup::Format format = backup::Format::kV2;
  if (fmt == "v1") {
    format = backup::Format::kV1;
  } else if (!fmt.empty() && fmt != "v2") {
    return Fail("encrypt", absl::InvalidArgumentError("--format is v1 or v2"));
  }
  size_t chunk = backup::kDefaultChunkSize;
  if (!Get(o, "chunk-size").empty() && !absl::SimpleAtoi(Get(o, "chunk-size"), &chunk)) {
    return Fail("encrypt", absl::InvalidArgumentError("--chunk-size is not a number"));
  }
  if (Get(o, "public-key").empty()) {
    return Fail("encrypt", absl::InvalidArgumentError("--public-key FILE is required"));
  }
  auto key = backup::RsaPublicKey::FromPemFile(Get(o, "public-key"));
  if (!key.ok()) return Fail("encrypt", key.status());
  auto in_fd = OpenInput(o);
  if (!in_fd.ok()) return Fail("encrypt", in_fd.status());
  // Read once into private memory by a reader thread (ring_source.h).
  auto ring = RingSource::Start(*in_fd, backup::kDefaultChunkSize + 4096);
  if (!ring.ok()) return Fail("encrypt", ring.status());
  ByteSource& in = **ring;
  OutputFile file;
  int out_fd = 1;
  std::string out = Get(o, "out");
  if (!out.empty() && out != "-") {
    if (absl::Status s = file.Open(out); !s.ok()) return Fail("encrypt", s);
    out_fd = file.fd();
  }
  // A v2 chunk with its framing; v1 writes are gathered into 1 MiB.
  ThreadedFdSink sink(out_fd, std::max(chunk + 256, size_t{1} << 20), /*plaintext=*/false);
  absl::Status s = backup::Encrypt(format, *key, &in, &sink, chunk);
  absl::Status written = sink.Finish();
  if (s.ok()) s = written;
  if (s.ok() && out_fd != 1) s = file.Commit();
  if (*in_fd != 0) close(*in_fd);
  return s.ok() ? 0 : Fail("encrypt", s);
}

int Decrypt(const std::multimap<std::string, std::string>& o) {
  std::vector<backup::RsaPrivateKey> keys;
  for (auto [b, e] = o.equal_range("private-key"); b != e; ++b) {
    auto k = backup::RsaPrivateKey::FromPemFile(b->second);
    if (!k.ok()) return Fail("decrypt", k.status());
    keys.push_back(std::move(k).value());
  }
  if (keys.empty()) {
    return Fail("decrypt", absl::InvalidArgumentError("--private-key FILE is required"));
  }
  std::vector<const backup::RsaPrivateKey*> ptrs;
  for (const auto& k : keys) ptrs.push_back(&k);
  auto in_fd = OpenInput(o);
  if (!in_fd.ok()) return Fail("decrypt", in_fd.status());
  // Never a shared mapping of untrusted input: a reader thread copies it
  // once into private memory, and the MAC and the decryption both read that
  // copy; a shrinking file is a short read, never SIGBUS (ring_source.h).
  auto ring = RingSource::Start(*in_fd, backup::kDefaultChunkSize + 4096);
  if (!ring.ok()) return Fail("decrypt", ring.status());
  ByteSource& raw = **ring;
  // Peek at the magic: v1 to stdout must be spooled (its one tag comes last).
  std::string prefix(6, '\0');
  size_t got = 0;
  while (got < prefix.size()) {
    auto r = raw.Read(prefix.data() + got, prefix.size() - got);
    if (!r.ok()) return Fail("decrypt", r.status());
    if (*r == 0) break;
    got += *r;
  }
  prefix.resize(got);
  PrefixSource in(prefix, &raw);
  auto format = backup::DetectFormat(prefix);

  OutputFile file;
  int out_fd = 1;
  std::string out = Get(o, "out");
  if (!out.empty() && out != "-") {
    if (absl::Status s = file.Open(out); !s.ok()) return Fail("decrypt", s);
    out_fd = file.fd();
  }
  // v1 has one tag at the very end: where output is released as it is
  // written (stdout, a device, a FIFO), hold it in memory until it verifies.
  const bool hold = format.ok() && *format == backup::Format::kV1 && (out_fd == 1 || file.direct());
  MemorySink held;
  // Sized for the default chunk; other sizes grow the buffers on first use.
  ThreadedFdSink sink(out_fd, backup::kDefaultChunkSize + 256, /*plaintext=*/true);
  backup::DecryptInfo info;
  absl::Status s = backup::Decrypt(ptrs, &in, hold ? static_cast<ByteSink*>(&held) : &sink,
                                   &info, Get(o, "accept-empty") == "1");
  if (s.ok() && hold) s = sink.Write(held.data());  // verified: now release it
  absl::Status written = sink.Finish();
  if (s.ok()) s = written;
  if (*in_fd != 0) close(*in_fd);
  if (s.ok() && out_fd != 1) s = file.Commit();
  if (!s.ok()) return Fail("decrypt", s);
  if (Get(o, "quiet") == "1") return 0;
  std::cerr << "verified " << (info.format == backup::Format::kV2 ? "v2" : "v1 (pghoa1)")
            << " backup, key " << info.key_id_hex << "\n";
  return 0;
}

int Inspect(const std::multimap<std::string, std::string>& o) {
  auto in_fd = OpenInput(o);
  if (!in_fd.ok()) return Fail("inspect", in_fd.status());
  FdSource in(*in_fd);
  auto h = backup::Inspect(&in);
  if (*in_fd != 0) close(*in_fd);
  if (!h.ok()) return Fail("inspect", h.status());
  if (h->format == backup::Format::kV1) {
    std::cout << "format: v1 (pghoa1, pghoard/rohmu)\nwrapped key: " << h->wrapped_key_bytes
              << " bytes (RSA-" << h->wrapped_key_bytes * 8
              << ", OAEP-SHA1)\nkey id: not recorded in v1 files\n";
  } else {
    std::cout << "format: v2 (NWBK version " << h->version << ")\nkey id: " << h->key_id_hex
              << "\nwrapped key: " << h->wrapped_key_bytes << " bytes (RSA-"
              << h->wrapped_key_bytes * 8 << ", OAEP-SHA256)\nchunk size: " << h->chunk_size
              << "\n";
  }
  std::cout << "(header only: nothing was authenticated)\n";
  return 0;
}

}  // namespace

int RunBackupCommand(const std::vector<std::string>& words,
                     const std::multimap<std::string, std::string>& options) {
  const std::string verb = words.empty() ? "" : words[0];
  if (verb == "keygen") return Keygen(options);
  if (verb == "encrypt") return Encrypt(options);
  if (verb == "decrypt") return Decrypt(options);
  if (verb == "inspect") return Inspect(options);
  std::cerr << "usage: nodewardctl backup keygen|encrypt|decrypt|inspect (see nodewardctl)\n";
  return 1;
}

}  // namespace nodeward
