#include "platform/linux/volume_linux.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"


#include "platform/linux/mountinfo.h"

namespace nodeward::platform {
namespace {

std::string ReadSmall(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(ss.str()));
}

std::string BaseName(const std::string& p) { return p.substr(p.rfind('/') + 1); }

absl::StatusOr<BlockDevice> Describe(const std::string& stable_id, const std::string& node) {
  char real[PATH_MAX];
  if (realpath(node.c_str(), real) == nullptr) {
    return absl::NotFoundError(absl::StrCat("device ", stable_id, ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (stat(real, &st) != 0) {
    return absl::NotFoundError(absl::StrCat("device ", stable_id, ": ", std::strerror(errno)));
  }
  if (!S_ISBLK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("device ", stable_id, ": ", real, " is not a block device"));
  }
  BlockDevice d;
  d.stable_id = stable_id;
  d.path = real;
  d.rdev = st.st_rdev;
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    uint64_t size = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) == 0) d.size_bytes = size;
    close(fd);
  }
  return d;
}


bool HasEntries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool any = false;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) any = true;
  }
  closedir(d);
  return any;
}

class LinuxDeviceHandle final : public DeviceHandle {
 public:
  LinuxDeviceHandle(BlockDevice d, int fd) : d_(std::move(d)), fd_(fd) {}
  ~LinuxDeviceHandle() override { close(fd_); }
  const BlockDevice& device() const override { return d_; }

 private:
  BlockDevice d_;
  int fd_;
};

}  // namespace

absl::Status LinuxRandom::Fill(absl::Span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "getrandom");
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<BlockDevice> LinuxBlockDevices::Resolve(const std::string& stable_id) {
  if (absl::StartsWith(stable_id, "serial:")) {
    const std::string want = stable_id.substr(7);
    DIR* d = opendir("/sys/block");
    if (d == nullptr) return absl::ErrnoToStatus(errno, "list /sys/block");
    std::vector<std::pair<std::string, std::string>> disks;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const std::string name = e->d_name;
      for (const std::string& f : {"/sys/block/" + name + "/serial",
                                   "/sys/block/" + name + "/device/serial"}) {
        if (access(f.c_str(), R_OK) == 0) {
          disks.emplace_back(name, ReadSmall(f));
          break;  // one serial per disk (device/serial is the same one)
        }
      }
    }
    closedir(d);
    absl::StatusOr<std::string> found = PickDiskBySerial(disks, want);
    if (!found.ok()) {
      return absl::Status(found.status().code(),
                          absl::StrCat("device ", stable_id, ": ", found.status().message()));
    }
    return Describe(stable_id, "/dev/" + *found);
  }
  constexpr absl::string_view kById = "/dev/disk/by-id/";
  if (!absl::StartsWith(stable_id, kById) ||
      stable_id.find('/', kById.size()) != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", stable_id, ": not a stable identifier"));
  }
  return Describe(stable_id, by_id_dir_ + "/" + stable_id.substr(kById.size()));
}

absl::StatusOr<std::string> PickDiskBySerial(
    const std::vector<std::pair<std::string, std::string>>& disks, const std::string& want) {
  std::vector<std::string> names;
  for (const auto& [name, serial] : disks) {
    if (serial == want) names.push_back(name);
  }
  if (names.empty()) return absl::NotFoundError("no disk has that serial");
  if (names.size() > 1) {
    std::sort(names.begin(), names.end());
    return absl::FailedPreconditionError(absl::StrCat(
        "ambiguous: ", absl::StrJoin(names, ", "),
        " share that serial; name the disk by /dev/disk/by-id/ instead"));
  }
  return names[0];
}

absl::Status LinuxBlockDevices::Recheck(const BlockDevice& device) {
  absl::StatusOr<BlockDevice> now = Resolve(device.stable_id);
  if (!now.ok()) {
    return absl::AbortedError(absl::StrCat("device ", device.stable_id,
                                           " no longer resolves: ", now.status().message()));
  }
  if (now->path != device.path || now->rdev != device.rdev ||
      now->size_bytes != device.size_bytes) {
    return absl::AbortedError(absl::StrCat(
        "device ", device.stable_id, " changed since it was checked (", device.path, " -> ",
        now->path, "); nothing was written"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceContent> LinuxBlockDevices::Probe(const BlockDevice& device) {
  int fd = open(device.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", device.path));
  std::vector<unsigned char> b(68 * 1024, 0);
  ssize_t n = pread(fd, b.data(), b.size(), 0);
  const int err = errno;
  close(fd);
  if (n < 0) return absl::ErrnoToStatus(err, absl::StrCat("read ", device.path));
  auto at = [&](size_t off, absl::string_view magic) {
    return off + magic.size() <= static_cast<size_t>(n) &&
           std::memcmp(b.data() + off, magic.data(), magic.size()) == 0;
  };
  DeviceContent c;
  std::vector<std::string> what;
  if (at(0, absl::string_view("LUKS\xba\xbe", 6)) || at(16384, absl::string_view("SKUL\xba\xbe", 6))) {
    c.luks = true;
    what.push_back("LUKS header");
  }
  if (at(1080, absl::string_view("\x53\xef", 2))) {
    c.filesystem = true;
    what.push_back("ext2/3/4 file system");
  }
  if (at(0, "XFSB")) {
    c.filesystem = true;
    what.push_back("xfs file system");
  }
  if (at(65600, "_BHRfS_M")) {
    c.filesystem = true;
    what.push_back("btrfs file system");
  }
  if (at(4086, "SWAPSPACE2") || at(4086, "SWAP-SPACE")) {
    c.filesystem = true;
    what.push_back("swap");
  }
  if (at(512, "EFI PART")) {
    c.partition_table = true;
    what.push_back("GPT partition table");
  } else if (at(510, absl::string_view("\x55\xaa", 2))) {
    // An MBR: at least one partition entry with a type.
    for (int i = 0; i < 4; ++i) {
      if (b[446 + 16 * i + 4] != 0) {
        c.partition_table = true;
        what.push_back("MBR partition table");
        break;
      }
    }
  }
  c.description = what.empty() ? "blank" : absl::StrJoin(what, ", ");
  return c;
}

absl::StatusOr<DeviceUse> LinuxBlockDevices::Use(const BlockDevice& device) {
  DeviceUse u;
  std::vector<std::string> what;
  // The device and its partitions.
  const std::string name = BaseName(device.path);
  std::vector<std::pair<std::string, uint64_t>> nodes = {{name, device.rdev}};
  const std::string sys = "/sys/class/block/" + name;
  if (DIR* d = opendir(sys.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string part = e->d_name;
      if (!absl::StartsWith(part, name) || access((sys + "/" + part + "/partition").c_str(), F_OK) != 0) {
        continue;
      }
      std::vector<std::string> mm = absl::StrSplit(ReadSmall(sys + "/" + part + "/dev"), ':');
      unsigned maj = 0, min = 0;
      if (mm.size() == 2 && absl::SimpleAtoi(mm[0], &maj) && absl::SimpleAtoi(mm[1], &min)) {
        nodes.emplace_back(part, makedev(maj, min));
      }
    }
    closedir(d);
  }
  const std::vector<MountInfo> mounts = ReadMountInfo();
  for (const auto& [node, rdev] : nodes) {
    for (const MountInfo& m : mounts) {
      if (m.dev == rdev) {
        u.mounted = true;
        what.push_back(absl::StrCat(node, " mounted at ", m.target));
      }
    }
    if (HasEntries("/sys/class/block/" + node + "/holders")) {
      u.held = true;
      what.push_back(absl::StrCat(node, " is held by another device (dm/md)"));
    }
  }
  int fd = open(device.path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  if (fd < 0 && errno == EBUSY) {
    u.busy = true;
    what.push_back("opened exclusively by someone else");
  }
  if (fd >= 0) close(fd);
  u.description = absl::StrJoin(what, "; ");
  return u;
}

absl::StatusOr<std::unique_ptr<DeviceHandle>> LinuxBlockDevices::OpenExclusive(
    const BlockDevice& device) {
  int fd = open(device.path.c_str(), O_RDWR | O_EXCL | O_CLOEXEC);
  if (fd < 0) {
    if (errno == EBUSY) {
      return absl::FailedPreconditionError(absl::StrCat("device ", device.path, " is in use"));
    }
    return absl::ErrnoToStatus(errno, absl::StrCat("open ", device.path));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISBLK(st.st_mode) || st.st_rdev != device.rdev) {
    close(fd);
    return absl::AbortedError(absl::StrCat("device ", device.stable_id,
                                           " changed between check and use"));
  }
  return std::unique_ptr<DeviceHandle>(new LinuxDeviceHandle(device, fd));
}

}  // namespace nodeward::platform
