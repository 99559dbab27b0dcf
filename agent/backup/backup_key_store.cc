#include "agent/backup/backup_key_store.h"

#include <openssl/crypto.h>

#include <cstring>

#include "absl/strings/str_cat.h"
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

absl::StatusOr<BackupKeyStore::Installed> BackupKeyStore::Install(
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
  bool have_private = fs_->ReadFile(key_path).ok();
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

absl::StatusOr<nodeward::v1::CommandResult> ProvisionBackupKeyHandler::Apply(
    const VerifiedCommand& command) {
  const auto& p = command.command.provision_backup_key();
  std::optional<SecureBuffer> priv;
  if (!p.private_key_pem().empty()) {
    ASSIGN_OR_RETURN(SecureBuffer b, SecureBuffer::Create(p.private_key_pem().size()));
    std::memcpy(b.data(), p.private_key_pem().data(), p.private_key_pem().size());
    priv = std::move(b);
  }
  ASSIGN_OR_RETURN(BackupKeyStore::Installed installed,
                   store_->Install(p.service_id(), p.public_key_pem(), priv));
  nodeward::v1::CommandResult r;
  auto* k = r.mutable_backup_key();
  k->set_service_id(p.service_id());
  k->set_key_id(installed.key_id_hex);
  k->set_changed(installed.changed);
  k->set_private_key_installed(priv.has_value());
  return r;
}

}  // namespace nodeward::backup
