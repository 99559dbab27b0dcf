#include "agent/attest/signing_key.h"

#include "absl/strings/str_cat.h"
#include "agent/common/secure_buffer.h"
#include "agent/common/status_macros.h"

namespace nodeward::attest {
namespace {
// An Ed25519 PKCS#8 PEM is 119 bytes.
constexpr size_t kMaxPem = 4096;
}  // namespace

absl::StatusOr<Ed25519PrivateKey> LoadOrCreateSigningKey(platform::FileSystem* fs,
                                                         const std::string& path) {
  ASSIGN_OR_RETURN(SecureBuffer pem, SecureBuffer::Create(kMaxPem));
  absl::StatusOr<size_t> n =
      fs->ReadFileInto(path, reinterpret_cast<char*>(pem.data()), pem.size());
  if (n.ok()) {
    pem.Shrink(*n);
    absl::StatusOr<Ed25519PrivateKey> key = Ed25519PrivateKey::FromPem(pem);
    if (!key.ok()) {
      return absl::DataLossError(absl::StrCat("signing key ", path, " is corrupt (",
                                              key.status().message(),
                                              "); it is not replaced by a new one"));
    }
    return key;
  }
  if (!absl::IsNotFound(n.status())) {
    return absl::Status(n.status().code(),
                        absl::StrCat("read signing key ", path, ": ", n.status().message()));
  }
  ASSIGN_OR_RETURN(Ed25519PrivateKey key, Ed25519PrivateKey::Generate());
  ASSIGN_OR_RETURN(SecureBuffer out, key.ToPem());
  if (absl::Status s = fs->WriteFileAtomically(path, out.view(), 0600); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("store new signing key ", path, ": ", s.message()));
  }
  return key;
}

}  // namespace nodeward::attest
