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

// A regular input file, memory-mapped so the cipher reads it in place.
// A helper thread keeps the reader's thread free of kernel work: it maps the
// pages ahead of the reader (MADV_POPULATE_READ, Linux 5.14+; without it the
// reader faults them in itself) and drops the pages already consumed behind it
// (MADV_DONTNEED: unmapping costs ~5% of the cipher's time when the reader
// does it), so resident memory stays bounded whatever the file size. Dropping
// only removes this process's page-table entries: a page dropped too early is
// read again from the page cache, never lost.
class MappedSource final : public ByteSource {
 public:
  static std::unique_ptr<MappedSource> Open(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return nullptr;
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return nullptr;
    madvise(p, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
    return std::unique_ptr<MappedSource>(
        new MappedSource(static_cast<const char*>(p), static_cast<size_t>(st.st_size)));
  }
  ~MappedSource() override {
    {
      absl::MutexLock l(&mu_);
      stop_ = true;
    }
    if (helper_.joinable()) helper_.join();
    munmap(const_cast<char*>(base_), size_);
  }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    absl::string_view v = Take(n);
    std::memcpy(buf, v.data(), v.size());
    return v.size();
  }
  bool CanView() const override { return true; }
  absl::StatusOr<absl::string_view> ReadView(size_t n) override { return Take(n); }

 private:
  static constexpr size_t kWindow = 2 << 20;  // populated per step
  static constexpr size_t kAhead = 8 << 20;   // at most this far ahead of the reader
  static constexpr size_t kDrop = 8 << 20;    // dropped behind the reader in steps of this

  MappedSource(const char* base, size_t size) : base_(base), size_(size) {
    if (size_ > kWindow) helper_ = std::thread([this] { Help(); });
  }

  void Help() {
    bool can_populate = true;
    IdleBackoff idle;
    // The helper's own: only it drops and populates.
    size_t dropped = 0, populated = 0;
    while (true) {
      size_t in_use;
      {
        absl::MutexLock l(&mu_);
        if (stop_) return;
        in_use = in_use_;
      }
      bool worked = false;
      if (in_use >= dropped + kDrop) {
        // Everything before the view the reader holds now (page-aligned down).
        const size_t upto = in_use & ~size_t{4095};
        madvise(const_cast<char*>(base_) + dropped, upto - dropped, MADV_DONTNEED);
        dropped = upto;
        populated = std::max(populated, dropped);  // never map what is gone
        worked = true;
      }
      if (populated < std::min(size_, in_use + kAhead)) {
        const size_t len = std::min(kWindow, size_ - populated);
#ifdef MADV_POPULATE_READ
        if (can_populate &&
            madvise(const_cast<char*>(base_) + populated, len, MADV_POPULATE_READ) != 0) {
          can_populate = false;  // the reader faults the pages in itself
        }
#endif
        populated += len;
        worked = true;
      }
      if (worked) {
        idle.Reset();
        continue;
      }
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), idle.Next());
    }
  }

  absl::string_view Take(size_t n) {
    const size_t k = std::min(n, size_ - pos_);
    absl::string_view v(base_ + pos_, k);
    if (helper_.joinable()) {
      absl::MutexLock l(&mu_);
      in_use_ = pos_;  // the caller no longer needs what lies before this view
    }
    pos_ += k;
    return v;
  }
  const char* base_;
  size_t size_;
  size_t pos_ = 0;  // the reader's thread only
  absl::Mutex mu_;
  size_t in_use_ ABSL_GUARDED_BY(mu_) = 0;  // start of the reader's current view
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread helper_;
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

// --out FILE: written to a temp file beside it and renamed only on success,
// so a failed run never leaves partial (or unauthenticated) output there.
class OutputFile {
 public:
  absl::Status Open(const std::string& path) {
    path_ = path;
    tmp_ = path + ".nwtmp-XXXXXX";
    fd_ = mkstemp(tmp_.data());
    if (fd_ < 0) return absl::ErrnoToStatus(errno, "create " + tmp_);
    return absl::OkStatus();
  }
  int fd() const { return fd_; }
  absl::Status Commit() {
    if (fsync(fd_) != 0) return absl::ErrnoToStatus(errno, "fsync " + tmp_);
    close(fd_);
    fd_ = -1;
    if (rename(tmp_.c_str(), path_.c_str()) != 0) return absl::ErrnoToStatus(errno, "rename to " + path_);
    tmp_.clear();
    return absl::OkStatus();
  }
  ~OutputFile() {
    if (fd_ >= 0) close(fd_);
    if (!tmp_.empty()) unlink(tmp_.c_str());
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
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
  FdSource fd_in(*in_fd);
  std::unique_ptr<MappedSource> mapped = MappedSource::Open(*in_fd);
  ByteSource& in = mapped ? static_cast<ByteSource&>(*mapped) : fd_in;
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
  FdSource fd_raw(*in_fd);
  std::unique_ptr<MappedSource> mapped = MappedSource::Open(*in_fd);
  ByteSource& raw = mapped ? static_cast<ByteSource&>(*mapped) : fd_raw;
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
  FILE* spool = nullptr;
  std::string out = Get(o, "out");
  if (!out.empty() && out != "-") {
    if (absl::Status s = file.Open(out); !s.ok()) return Fail("decrypt", s);
    out_fd = file.fd();
  } else if (format.ok() && *format == backup::Format::kV1) {
    spool = tmpfile();  // unlinked; gone with the process whatever happens
    if (spool == nullptr) return Fail("decrypt", absl::ErrnoToStatus(errno, "create spool file"));
    out_fd = fileno(spool);
  }
  // Sized for the default chunk; other sizes grow the buffers on first use.
  ThreadedFdSink sink(out_fd, backup::kDefaultChunkSize + 256, /*plaintext=*/true);
  backup::DecryptInfo info;
  absl::Status s = backup::Decrypt(ptrs, &in, &sink, &info, Get(o, "accept-empty") == "1");
  absl::Status written = sink.Finish();
  if (s.ok()) s = written;
  if (*in_fd != 0) close(*in_fd);
  if (s.ok() && spool != nullptr) {
    // Verified: now release the plaintext.
    if (lseek(out_fd, 0, SEEK_SET) != 0) s = absl::ErrnoToStatus(errno, "rewind spool");
    FdSource back(out_fd);
    FdSink stdout_sink(1);
    char buf[1 << 16];
    while (s.ok()) {
      auto r = back.Read(buf, sizeof(buf));
      if (!r.ok()) s = r.status();
      if (!s.ok() || *r == 0) break;
      s = stdout_sink.Write(absl::string_view(buf, *r));
    }
  }
  if (spool != nullptr) fclose(spool);
  if (s.ok() && out_fd != 1 && spool == nullptr) s = file.Commit();
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
