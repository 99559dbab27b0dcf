#include "agent/backup/backup_key_store.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/reason.h"
#include "agent/backup/backup_keys.h"
#include "agent/common/status_macros.h"

namespace nodeward::backup {
namespace {

bool ValidServiceId(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
    if (!ok) return false;
  }
  return true;
}

}  // namespace

void BackupKeyStore::Fence(const std::string& why) {
  absl::MutexLock lock(&mu_);
  fence_ = why;
}

absl::StatusOr<BackupKeyStore::Installed> BackupKeyStore::Install(
    const std::string& service_id, const std::string& public_key_pem,
    const std::optional<SecureBuffer>& private_key_pem) {
  absl::MutexLock lock(&mu_);
  if (!fence_.empty()) {
    return Reject(absl::StatusCode::kFailedPrecondition, reason::kWipeStarted,
                  absl::StrCat("install backup key for ", service_id, ": ", fence_));
  }
  return InstallLocked(service_id, public_key_pem, private_key_pem);
}

absl::StatusOr<BackupKeyStore::Installed> BackupKeyStore::InstallLocked(
    const std::string& service_id, const std::string& public_key_pem,
    const std::optional<SecureBuffer>& private_key_pem) {
  if (!ValidServiceId(service_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("provision backup key: service id '", service_id.substr(0, 64),
                     "' is not [a-z0-9][a-z0-9-]{0,62}"));
  }
  // Everything is checked before anything is written.
  ASSIGN_OR_RETURN(RsaPublicKey pub, RsaPublicKey::FromPem(public_key_pem));
  if (private_key_pem.has_value()) {
    absl::StatusOr<RsaPrivateKey> priv = RsaPrivateKey::FromPem(*private_key_pem, kMinRsaBits);
    if (!priv.ok()) return priv.status();
    if (priv->public_key().key_id() != pub.key_id()) {
      return absl::InvalidArgumentError(
          "provision backup key: the private key does not match the public key");
    }
  }
  const std::string id = pub.key_id_hex();
  const std::string service_dir = absl::StrCat(dir_, "/", service_id);
  const std::string pub_path = absl::StrCat(service_dir, "/", id, ".pub");
  const std::string key_path = absl::StrCat(service_dir, "/", id, ".key");
  const std::string current_path = absl::StrCat(service_dir, "/current");
  const std::string pub_text = pub.ToPem();

  absl::StatusOr<std::string> current = fs_->ReadFile(current_path);
  absl::StatusOr<std::string> existing_pub = fs_->ReadFile(pub_path);
  // Whether the private key is there; never read it (its text would be left
  // in ordinary memory).
  bool have_private = fs_->FileSize(key_path).ok();
  if (current.ok() && *current == id + "\n" && existing_pub.ok() && *existing_pub == pub_text &&
      (!private_key_pem.has_value() || have_private)) {
    return Installed{id, false};
  }
  RETURN_IF_ERROR(fs_->MakeDirectory(service_dir, 0700));
  RETURN_IF_ERROR(fs_->WriteFileAtomically(pub_path, pub_text, 0644));
  if (private_key_pem.has_value()) {
    RETURN_IF_ERROR(fs_->WriteFileAtomically(key_path, private_key_pem->view(), 0600));
  }
  RETURN_IF_ERROR(fs_->WriteFileAtomically(current_path, id + "\n", 0644));
  return Installed{id, true};
}

std::vector<nodeward::v1::WipeItem> BackupKeyStore::WipeAll() {
  absl::MutexLock lock(&mu_);
  return WipeAllLocked();
}

std::vector<nodeward::v1::WipeItem> BackupKeyStore::WipeAllLocked() {
  std::vector<nodeward::v1::WipeItem> out;
  auto item = [&](const std::string& path) -> nodeward::v1::WipeItem& {
    out.emplace_back();
    out.back().set_kind(nodeward::v1::WipeItem::BACKUP_KEY_FILE);
    out.back().set_id(path);
    return out.back();
  };
  absl::StatusOr<std::vector<platform::FileSystem::Entry>> tree = fs_->ListTree(dir_);
  if (!tree.ok()) {
    item(dir_).set_detail(absl::StrCat("list FAILED: ", tree.status().message()));
    return out;
  }
  for (const auto& e : *tree) {
    if (e.directory) {
      (void)fs_->RemoveDirectory(e.path);  // checked below with the rest
      continue;
    }
    nodeward::v1::WipeItem& it = item(e.path);
    absl::StatusOr<uint64_t> size = fs_->FileSize(e.path);
    if (absl::IsFailedPrecondition(size.status())) {
      // Not a regular file (a symlink): nothing of ours to overwrite.
      absl::Status rm = fs_->RemoveFile(e.path);
      it.set_verified(rm.ok());
      it.set_detail(rm.ok() ? "not a regular file: removed, not followed"
                            : absl::StrCat("remove FAILED: ", rm.message()));
      continue;
    }
    if (!size.ok()) {
      it.set_detail(absl::StrCat("stat FAILED: ", size.status().message()));
      continue;
    }
    std::string noise(static_cast<size_t>(*size), '\0');
    if (!noise.empty() &&
        RAND_bytes(reinterpret_cast<unsigned char*>(noise.data()), static_cast<int>(noise.size())) != 1) {
      it.set_detail("random bytes FAILED");
      continue;
    }
    absl::Status s = fs_->OverwriteInPlace(e.path, noise);
    if (!s.ok()) {
      it.set_detail(absl::StrCat("overwrite FAILED: ", s.message()));
      continue;
    }
    s = fs_->RemoveFile(e.path);
    if (!s.ok()) {
      it.set_detail(absl::StrCat("overwritten, remove FAILED: ", s.message()));
      continue;
    }
    const bool gone = absl::IsNotFound(fs_->FileSize(e.path).status());
    it.set_verified(gone);
    it.set_detail(gone ? absl::StrCat("overwritten (", *size, " bytes), flushed, removed")
                       : "overwritten, but still present after removal");
  }
  absl::StatusOr<std::vector<platform::FileSystem::Entry>> left = fs_->ListTree(dir_);
  // The directory itself is always an item: a receipt says the key
  // directory was checked even on a node that never held a backup key.
  nodeward::v1::WipeItem& d = item(dir_);
  if (left.ok() && left->empty()) {
    d.set_verified(true);
    d.set_detail("key directory checked empty");
  } else {
    d.set_detail(left.ok() ? absl::StrCat(left->size(), " entries left after the wipe")
                           : absl::StrCat("check FAILED: ", left.status().message()));
  }
  return out;
}

absl::StatusOr<nodeward::v1::CommandResult> ProvisionBackupKeyHandler::Apply(
    const VerifiedCommand& command) {
  const auto& p = command.command.provision_backup_key();
  std::optional<SecureBuffer> priv;
  if (!p.private_key_pem().empty()) {
    ASSIGN_OR_RETURN(SecureBuffer b, SecureBuffer::Create(p.private_key_pem().size()));
    std::memcpy(b.data(), p.private_key_pem().data(), p.private_key_pem().size());
    priv = std::move(b);
  }
  absl::StatusOr<BackupKeyStore::Installed> done =
      store_->Install(p.service_id(), p.public_key_pem(), priv);
  if (!done.ok()) {
    // Everything is checked before anything is written: an invalid key is
    // INVALID_ARGUMENT; anything else failed writing the store.
    return WithDefaultReason(done.status(), absl::IsInvalidArgument(done.status())
                                                ? reason::kBackupKeyInvalid
                                                : reason::kBackupKeyStoreFailed);
  }
  const BackupKeyStore::Installed& installed = *done;
  nodeward::v1::CommandResult r;
  auto* k = r.mutable_backup_key();
  k->set_service_id(p.service_id());
  k->set_key_id(installed.key_id_hex);
  k->set_changed(installed.changed);
  k->set_private_key_installed(priv.has_value());
  return r;
}

}  // namespace nodeward::backup
