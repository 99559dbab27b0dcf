#ifndef NODEWARD_AGENT_BACKUP_BACKUP_KEY_STORE_H_
#define NODEWARD_AGENT_BACKUP_BACKUP_KEY_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/command/command_handler.h"
#include "nodeward/v1/agent.pb.h"
#include "agent/common/secure_buffer.h"
#include "platform/file_system.h"

namespace nodeward::backup {

// The backup keys installed on this node, one directory per service:
//   <dir>/<service_id>/<key_id>.pub   SPKI PEM, 0644
//   <dir>/<service_id>/<key_id>.key   PKCS#8 PEM, 0600 (only if delivered)
//   <dir>/<service_id>/current        the key id new backups use
// Every file is written atomically. Older keys stay (restores of older
// backups); the wipe command will destroy the whole directory.
class BackupKeyStore {
 public:
  BackupKeyStore(platform::FileSystem* fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}

  struct Installed {
    std::string key_id_hex;
    bool changed = false;
  };
  // INVALID_ARGUMENT for a bad service id, a public key that is not RSA-3072+
  // SPKI, or a private key that is malformed or does not match; nothing is
  // written then. Idempotent.
  absl::StatusOr<Installed> Install(const std::string& service_id,
                                    const std::string& public_key_pem,
                                    const std::optional<SecureBuffer>& private_key_pem);

  // The wipe: every file under the key directory overwritten in place with
  // random bytes, flushed and removed (symlinks removed, never followed),
  // then the service directories; checked empty afterwards. One item per
  // file, plus one for the check if it fails. Older versions of a key file
  // replaced by an earlier install are outside its reach (docs/wipe.md).
  std::vector<nodeward::v1::WipeItem> WipeAll();

  // From a wipe's intent on, Install is refused (WIPE_STARTED), under the
  // lock Install and WipeAll take.
  void Fence(const std::string& why);

 private:
  absl::StatusOr<Installed> InstallLocked(const std::string& service_id,
                                          const std::string& public_key_pem,
                                          const std::optional<SecureBuffer>& private_key_pem)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<nodeward::v1::WipeItem> WipeAllLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  platform::FileSystem* fs_;
  std::string dir_;
  absl::Mutex mu_;
  std::string fence_ ABSL_GUARDED_BY(mu_);
};

// Applies ProvisionBackupKey commands.
class ProvisionBackupKeyHandler final : public CommandHandler {
 public:
  explicit ProvisionBackupKeyHandler(BackupKeyStore* store) : store_(store) {}
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;

 private:
  BackupKeyStore* store_;
};

}  // namespace nodeward::backup

#endif  // NODEWARD_AGENT_BACKUP_BACKUP_KEY_STORE_H_
