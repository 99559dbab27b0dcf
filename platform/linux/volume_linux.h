#ifndef NODEWARD_PLATFORM_LINUX_VOLUME_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_VOLUME_LINUX_H_

#ifndef __linux__
#error "volume_linux is Linux-only"
#endif

#include <string>
#include <utility>
#include <vector>

#include "platform/volume.h"

namespace nodeward::platform {

// getrandom(2), blocking until the pool is ready.
class LinuxRandom final : public Random {
 public:
  absl::Status Fill(absl::Span<uint8_t> out) override;
};

// Devices from sysfs and /proc/self/mountinfo; "/dev/disk/by-id/<id>" is
// looked up in `by_id_dir` (normally /dev/disk/by-id).
class LinuxBlockDevices final : public BlockDevices {
 public:
  explicit LinuxBlockDevices(std::string by_id_dir = "/dev/disk/by-id")
      : by_id_dir_(std::move(by_id_dir)) {}
  absl::StatusOr<BlockDevice> Resolve(const std::string& stable_id) override;
  absl::StatusOr<DeviceContent> Probe(const BlockDevice& device) override;
  absl::StatusOr<DeviceUse> Use(const BlockDevice& device) override;
  absl::StatusOr<std::unique_ptr<DeviceHandle>> OpenExclusive(const BlockDevice& device) override;
  absl::Status Recheck(const BlockDevice& device) override;

 private:
  std::string by_id_dir_;
};

// The disk whose sysfs serial is `want`, from (block device name, serial)
// pairs. NOT_FOUND for none; FAILED_PRECONDITION naming them when several
// share it (NVMe namespaces do): a serial that is not unique is no identity.
absl::StatusOr<std::string> PickDiskBySerial(
    const std::vector<std::pair<std::string, std::string>>& disks, const std::string& want);

// dm-crypt and LUKS2 through libcryptsetup (never the cryptsetup binary).
class LinuxCrypt final : public Crypt {
 public:
  absl::StatusOr<std::string> Format(const BlockDevice& device,
                                     absl::Span<const uint8_t> volume_key,
                                     const CryptParams& params) override;
  absl::Status Activate(const BlockDevice& device, const std::string& name,
                        absl::Span<const uint8_t> volume_key, const CryptParams& params) override;
  absl::Status CheckAvailable() override;
  absl::StatusOr<CryptStatus> Status(const std::string& name) override;
  absl::StatusOr<LuksHeader> ReadHeader(const BlockDevice& device) override;
  absl::Status Deactivate(const std::string& name) override;
  absl::Status ForceDeactivate(const std::string& name) override;
  absl::StatusOr<uint64_t> EraseHeader(const BlockDevice& device) override;
};

// mkfs runs the distro's mkfs.ext4 / mkfs.xfs. A mount point is never used
// as text: it is resolved component by component from "/" beneath one of
// `allowed_roots` (no symbolic links, no "..", every directory on the way
// root-owned and writable by nobody else; platform/linux/beneath.h), the new
// file system is attached to the resolved directory's fd (fsopen, fsmount,
// move_mount), and what is mounted there is identified by mount id.
class LinuxFilesystems final : public Filesystems {
 public:
  explicit LinuxFilesystems(std::vector<std::string> allowed_roots = {})
      : roots_(std::move(allowed_roots)) {}
  absl::Status CheckMkfs(FsType type) override;
  absl::Status Mkfs(const std::string& device, FsType type) override;
  absl::Status Mount(const std::string& device, const std::string& target, FsType type,
                     const std::string& options) override;
  absl::StatusOr<std::optional<uint64_t>> MountedAt(const std::string& target) override;
  absl::StatusOr<FsUsage> Usage(const std::string& target) override;
  absl::StatusOr<uint64_t> DeviceNumber(const std::string& node) override;
  absl::Status MakeDirectories(const std::string& path) override;
  absl::Status Unmount(const std::string& target, bool lazy) override;

 private:
  std::vector<std::string> roots_;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_VOLUME_LINUX_H_
