#ifndef NODEWARD_PLATFORM_VOLUME_H_
#define NODEWARD_PLATFORM_VOLUME_H_

// Side effects of encrypted volumes: block devices, dm-crypt/LUKS2, file
// systems and mounts, and the random source. Linux implementations in
// platform/linux/volume_linux.*, in-memory fakes in tests/fakes/.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace nodeward::platform {

// Cryptographically secure random bytes (getrandom(2)).
class Random {
 public:
  virtual ~Random() = default;
  virtual absl::Status Fill(absl::Span<uint8_t> out) = 0;
};

struct BlockDevice {
  std::string stable_id;  // as given: /dev/disk/by-id/..., or serial:<serial>
  std::string path;       // what it resolved to, e.g. /dev/vdb
  uint64_t rdev = 0;      // st_rdev of the node: the identity re-checked after open
  uint64_t size_bytes = 0;
};

// What a probe found in the first blocks of a device.
struct DeviceContent {
  bool filesystem = false;       // ext2/3/4, xfs, btrfs, swap, ...
  bool luks = false;             // a LUKS1/LUKS2 header
  bool partition_table = false;  // MBR or GPT
  bool other = false;            // a RAID/LVM/bcache member, or any other signature
  std::string description;       // e.g. "ext4 file system at offset 0x438"
  bool blank() const { return !filesystem && !luks && !partition_table && !other; }
};

// Whether anyone uses the device now.
struct DeviceUse {
  bool mounted = false;  // in /proc/self/mountinfo
  bool held = false;     // holders in sysfs: a dm/md/... device sits on it
  bool busy = false;     // an exclusive open was refused (someone has it open exclusively)
  std::string description;
  bool in_use() const { return mounted || held || busy; }
};

// An exclusive open of a device (O_EXCL: no mount, no mapping, no other
// exclusive opener while it is held). Closing it releases the device.
class DeviceHandle {
 public:
  virtual ~DeviceHandle() = default;
  virtual const BlockDevice& device() const = 0;
};

class BlockDevices {
 public:
  virtual ~BlockDevices() = default;
  // Resolves a stable identifier to the device it names now. INVALID_ARGUMENT
  // for anything that is not a stable identifier (a bare /dev/sdX path),
  // NOT_FOUND for an unknown or vanished device, FAILED_PRECONDITION for a
  // non-block file.
  virtual absl::StatusOr<BlockDevice> Resolve(const std::string& stable_id) = 0;
  virtual absl::StatusOr<DeviceContent> Probe(const BlockDevice& device) = 0;
  virtual absl::StatusOr<DeviceUse> Use(const BlockDevice& device) = 0;
  // Opens the device exclusively and checks that the opened node is still
  // `device` (same st_rdev): a device swapped between check and use is
  // ABORTED. FAILED_PRECONDITION (EBUSY) if it is in use.
  virtual absl::StatusOr<std::unique_ptr<DeviceHandle>> OpenExclusive(const BlockDevice& device) = 0;
  // Resolves `device.stable_id` again and checks it is still the same disk
  // (path, dev_t, size): called immediately before the format, so a disk
  // swapped after the checks is found before its first block is written.
  // ABORTED if it changed.
  virtual absl::Status Recheck(const BlockDevice& device) = 0;
};

struct CryptParams {
  std::string cipher = "aes";
  std::string cipher_mode = "xts-plain64";
  std::string hash = "sha256";
  bool allow_discards = false;
};

struct CryptStatus {
  bool active = false;
  uint64_t backing_rdev = 0;  // the device under the mapping
  std::string cipher;         // e.g. "aes-xts-plain64"
  int key_bits = 0;
  std::string uuid;           // LUKS UUID (from the dm uuid)
  bool key_in_keyring = false;
  // The mapping is still there (something holds it open) but is no crypt
  // target any more: a forced removal replaced its table with an error
  // target, and the key went with the old table.
  bool key_destroyed = false;
};

// What a LUKS header says (read from the device, no key needed).
struct LuksHeader {
  std::string version;  // "LUKS2"
  std::string uuid;
  std::string cipher;   // "aes-xts-plain64"
  int key_bits = 0;
  int keyslots = 0;
};

class Crypt {
 public:
  virtual ~Crypt() = default;
  // Writes a LUKS2 header for `volume_key` with no keyslot at all (the key
  // cannot be recovered from the header). Returns the header's UUID.
  // libcryptsetup opens the device exclusively itself, so the caller's
  // exclusive handle must be released first; the caller re-checks the
  // mapping's device afterwards.
  // FAILED_PRECONDITION naming what is missing when this kernel cannot map
  // a dm-crypt volume (no device-mapper, no crypt target): checked before
  // anything is written to a device.
  virtual absl::Status CheckAvailable() = 0;
  virtual absl::StatusOr<std::string> Format(const BlockDevice& device,
                                             absl::Span<const uint8_t> volume_key,
                                             const CryptParams& params) = 0;
  // Maps `name` -> the device with `volume_key` (handed to the kernel through
  // the kernel keyring, never in the dm table).
  virtual absl::Status Activate(const BlockDevice& device, const std::string& name,
                                absl::Span<const uint8_t> volume_key,
                                const CryptParams& params) = 0;
  // active=false if there is no such mapping.
  virtual absl::StatusOr<CryptStatus> Status(const std::string& name) = 0;
  virtual absl::StatusOr<LuksHeader> ReadHeader(const BlockDevice& device) = 0;
  virtual absl::Status Deactivate(const std::string& name) = 0;
  // Removes the mapping even while it is in use: its table is replaced by an
  // error target, so the dm-crypt target and the key in it are freed either
  // way (the wipe). OK if there is no such mapping, or if it could only be
  // left behind as an error target (Status then says key_destroyed).
  virtual absl::Status ForceDeactivate(const std::string& name) = 0;
  // Overwrites the whole LUKS metadata area of `device` (both LUKS2 header
  // copies and the keyslot area, up to the data offset) with random bytes
  // and flushes it. The device must not be mapped or mounted (it is opened
  // exclusively). Returns the bytes overwritten; 0 if there is no LUKS
  // header (already erased).
  virtual absl::StatusOr<uint64_t> EraseHeader(const BlockDevice& device) = 0;
};

enum class FsType { kExt4, kXfs };

struct FsUsage {
  uint64_t size_bytes = 0;
  uint64_t used_bytes = 0;
};

class Filesystems {
 public:
  virtual ~Filesystems() = default;
  // Makes a file system on `device` (the mapping), e.g. /dev/mapper/<name>.
  // FAILED_PRECONDITION naming the program (and its package) when the mkfs
  // for `type` is not installed: checked before anything is written.
  virtual absl::Status CheckMkfs(FsType type) = 0;
  virtual absl::Status Mkfs(const std::string& device, FsType type) = 0;
  virtual absl::Status Mount(const std::string& device, const std::string& target, FsType type,
                             const std::string& options) = 0;
  // The st_rdev of what is mounted at `target`, if anything.
  virtual absl::StatusOr<std::optional<uint64_t>> MountedAt(const std::string& target) = 0;
  virtual absl::StatusOr<FsUsage> Usage(const std::string& target) = 0;
  // The st_rdev of a device node (e.g. the mapping's /dev/mapper/<name>).
  virtual absl::StatusOr<uint64_t> DeviceNumber(const std::string& node) = 0;
  virtual absl::Status MakeDirectories(const std::string& path) = 0;
  // Unmounts `target`; with `lazy`, detaches it even while files are open
  // (MNT_DETACH). OK if nothing is mounted there.
  virtual absl::Status Unmount(const std::string& target, bool lazy) = 0;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_VOLUME_H_
