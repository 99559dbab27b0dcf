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
#include "tools/nodewardctl/backup_io.h"
#include "tools/nodewardctl/ring_source.h"

namespace nodeward {
namespace {

using backup::ByteSink;
using backup::ByteSource;

using ctl::FdSink;
using ctl::FdSource;
using ctl::MemorySink;
using ctl::OutputFile;
using ctl::PrefixSource;
using ctl::ThreadedFdSink;

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
