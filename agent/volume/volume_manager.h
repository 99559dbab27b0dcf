#ifndef NODEWARD_AGENT_VOLUME_VOLUME_MANAGER_H_
#define NODEWARD_AGENT_VOLUME_VOLUME_MANAGER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/command/command_handler.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/command.pb.h"
#include "nodeward/v1/state.pb.h"
#include "platform/clock.h"
#include "platform/file_system.h"
#include "platform/journal.h"
#include "platform/volume.h"

namespace nodeward::volume {

struct VolumeOptions {
  std::vector<std::string> allowed_mount_roots;  // absolute, normalised
  std::string state_path;                        // <state_dir>/volumes.pb
  std::string boot_id;
};

struct VolumeDeps {
  platform::BlockDevices* devices;
  platform::Crypt* crypt;
  platform::Filesystems* filesystems;
  platform::Random* random;
  platform::FileSystem* fs;
  platform::Clock* clock;
  // One entry per setup and wipe step (VOLUME_ID, STEP, DEVICE, ...); may be
  // null. Never a key.
  platform::Journal* journal = nullptr;
};

// Checks a SetupVolume against the refusal rules that need no device:
// INVALID_ARGUMENT naming the field for a bad volume id, a bare /dev path or
// other non-stable device id, a bad mapper name ("x/x", too long), an
// unknown file system, a mount point that is relative, not normalised, or
// outside the allowed roots, or a mount option not on the list.
absl::Status ValidateSetupVolume(const nodeward::v1::SetupVolume& c,
                                 const std::vector<std::string>& allowed_mount_roots);

// Encrypted volumes with ephemeral keys (docs/volumes.md). Handles
// SetupVolume; reports every volume's state. Thread-safe (one command at a
// time).
//
// The volume key: 64 random bytes into locked, non-dumpable memory, a LUKS2
// header with no keyslot, activation through the kernel keyring, wiped
// right after. It is never written anywhere, so after a reboot the data is
// gone by design (KEY_LOST).
class VolumeManager final : public CommandHandler {
 public:
  VolumeManager(VolumeDeps deps, VolumeOptions options);

  // Startup: reads the records and looks at each volume without touching
  // it (a restart finds active volumes healthy; after a reboot they are
  // KEY_LOST). DATA_LOSS for a corrupt record file.
  absl::Status Restore();

  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;

  // Current state of every volume (looks at the kernel and mounts). Never
  // waits for a SetupVolume in progress (mkfs of a big disk takes minutes,
  // and health and the watchdog must not): then the last snapshot is
  // returned.
  std::vector<nodeward::v1::VolumeStatus> Statuses();

  // Crypto-erases every volume (docs/wipe.md): unmount (detached if files
  // are still open), remove the mapping (forced while in use: the dm-crypt
  // target and the only copy of its key are freed either way), overwrite the
  // LUKS2 header area, then check that nothing is mapped or mounted and no
  // LUKS header is left. Every step is idempotent, so a second call finishes
  // what an interrupted one began. A verified volume is recorded wiped and
  // can never be set up again. One item per volume, in record order.
  std::vector<nodeward::v1::WipeItem> WipeAll();

  // From the moment a wipe's intent is recorded (or found at startup),
  // every SetupVolume is refused (WIPE_STARTED), checked under the lock the
  // setup itself takes: one waiting for a running WipeAll is refused too.
  void Fence(const std::string& why);

 private:
  // A journal entry for one step of volume `id` (priority 6, or 4 when
  // `problem`).
  void Step(const std::string& id, const std::string& step, const std::string& detail,
            bool problem = false);
  nodeward::v1::VolumeStatus Inspect(const nodeward::v1::VolumeRecord& r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<nodeward::v1::CommandResult> SetupLocked(const nodeward::v1::SetupVolume& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Persist() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  nodeward::v1::WipeItem WipeOne(nodeward::v1::VolumeRecord* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const VolumeDeps deps_;
  const VolumeOptions options_;
  absl::Mutex mu_;
  nodeward::v1::VolumeState state_ ABSL_GUARDED_BY(mu_);
  // The record file was corrupt at startup: volumes set up before are
  // unknown, so a wipe cannot claim them done.
  std::string records_lost_ ABSL_GUARDED_BY(mu_);
  std::string fence_ ABSL_GUARDED_BY(mu_);
  absl::Mutex snapshot_mu_;
  std::vector<nodeward::v1::VolumeStatus> snapshot_ ABSL_GUARDED_BY(snapshot_mu_);
};

}  // namespace nodeward::volume

#endif  // NODEWARD_AGENT_VOLUME_VOLUME_MANAGER_H_
