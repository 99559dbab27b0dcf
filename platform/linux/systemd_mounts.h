#ifndef NODEWARD_PLATFORM_LINUX_SYSTEMD_MOUNTS_H_
#define NODEWARD_PLATFORM_LINUX_SYSTEMD_MOUNTS_H_

#ifndef __linux__
#error "systemd_mounts is Linux-only"
#endif

// Encrypted volumes mounted by systemd itself: a transient .mount unit per
// volume (StartTransientUnit over sd-bus), so the mount lives in the host's
// mount namespace, is tracked like any other mount (`systemctl status
// srv-db.mount`, `RequiresMountsFor=` in the database's unit, BindsTo= its
// /dev/mapper device), and the agent itself can run with
// ProtectSystem=strict in a mount namespace of its own. Everything that is
// not a mount or an unmount goes to LinuxFilesystems; the path checks of
// platform/linux/beneath.h still run first (a root-owned, nobody-else-
// writable path cannot change between the check and systemd's mount).

#include <memory>
#include <string>
#include <vector>

#include "platform/linux/volume_linux.h"

typedef struct sd_bus sd_bus;

namespace nodeward::platform {

// "/srv/nodeward/pg" -> "srv-nodeward-pg.mount" (systemd-escape --path
// --suffix=mount). `path` absolute and normalised.
std::string MountUnitName(const std::string& path);

class SystemdFilesystems final : public Filesystems {
 public:
  explicit SystemdFilesystems(std::vector<std::string> allowed_roots);
  ~SystemdFilesystems() override;

  absl::Status CheckMkfs(FsType type) override { return inner_.CheckMkfs(type); }
  absl::Status Mkfs(const std::string& device, FsType type) override {
    return inner_.Mkfs(device, type);
  }
  absl::Status Mount(const std::string& device, const std::string& target, FsType type,
                     const std::string& options) override;
  absl::StatusOr<std::optional<uint64_t>> MountedAt(const std::string& target) override {
    return inner_.MountedAt(target);
  }
  absl::StatusOr<FsUsage> Usage(const std::string& target) override {
    return inner_.Usage(target);
  }
  absl::StatusOr<uint64_t> DeviceNumber(const std::string& node) override {
    return inner_.DeviceNumber(node);
  }
  // Checks what exists of `path` (root-owned, writable by nobody else, no
  // links); systemd makes the missing directories (0755) when it mounts.
  absl::Status MakeDirectories(const std::string& path) override;
  // Stops the mount unit. Mount units are made with LazyUnmount=yes (the
  // wipe must not wait for a database holding files open), so `lazy` makes
  // no difference here.
  absl::Status Unmount(const std::string& target, bool lazy) override;

 private:
  absl::StatusOr<sd_bus*> Bus();
  // Polls the unit's ActiveState until one of `done` (or "failed").
  absl::StatusOr<std::string> WaitFor(const std::string& unit,
                                      const std::vector<std::string>& done);

  std::vector<std::string> roots_;
  LinuxFilesystems inner_;
  sd_bus* bus_ = nullptr;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_SYSTEMD_MOUNTS_H_
