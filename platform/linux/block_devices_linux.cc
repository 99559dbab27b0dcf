#include "platform/linux/volume_linux.h"

#include <dirent.h>
#include <blkid.h>
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

namespace {

struct ProbeFree {
  void operator()(blkid_probe pr) const { blkid_free_probe(pr); }
};

std::string Value(blkid_probe pr, const char* name) {
  const char* v = nullptr;
  size_t len = 0;
  if (blkid_probe_lookup_value(pr, name, &v, &len) != 0 || v == nullptr) return "";
  return std::string(v, strnlen(v, len));
}

// A LUKS2 secondary header at one of the offsets the format allows (16 KiB
// to 4 MiB): left behind when only the primary was overwritten.
bool HasLuks2Secondary(int fd) {
  static const unsigned char kSecondary[6] = {'S', 'K', 'U', 'L', 0xba, 0xbe};
  unsigned char buf[6];
  for (off_t off = 16 << 10; off <= (4 << 20); off *= 2) {
    if (pread(fd, buf, 6, off) == 6 && std::memcmp(buf, kSecondary, 6) == 0) return true;
  }
  return false;
}

}  // namespace

// libblkid, as wipefs(8) uses it: every superblock (file systems, RAID and
// LVM members, bcache, swap, LUKS, including those at the end of the device:
// md 0.90/1.0) and every partition table (GPT from its backup header at the
// end too), signatures with a bad checksum included: a disk is blank only if
// libblkid finds nothing at all. A second pass with blkid_do_safeprobe
// reports what it would refuse as ambiguous.
absl::StatusOr<DeviceContent> LinuxBlockDevices::Probe(const BlockDevice& device) {
  int fd = open(device.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", device.path));
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  std::unique_ptr<blkid_struct_probe, ProbeFree> pr(blkid_new_probe());
  if (!pr || blkid_probe_set_device(pr.get(), fd, 0, 0) != 0) {
    return absl::InternalError(absl::StrCat("probe ", device.path, ": libblkid cannot read it"));
  }
  blkid_probe_enable_superblocks(pr.get(), 1);
  blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE |
                                                  BLKID_SUBLKS_VERSION | BLKID_SUBLKS_MAGIC |
                                                  BLKID_SUBLKS_BADCSUM);
  blkid_probe_enable_partitions(pr.get(), 1);
  blkid_probe_set_partitions_flags(pr.get(), BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);

  DeviceContent c;
  std::vector<std::string> what;
  int r;
  while ((r = blkid_do_probe(pr.get())) == 0) {
    const std::string type = Value(pr.get(), "TYPE");
    const std::string pttype = Value(pr.get(), "PTTYPE");
    const std::string usage = Value(pr.get(), "USAGE");
    const std::string offset =
        Value(pr.get(), pttype.empty() || !type.empty() ? "SBMAGIC_OFFSET" : "PTMAGIC_OFFSET");
    const bool badcsum = !Value(pr.get(), "SBBADCSUM").empty();
    std::string one;
    if (!pttype.empty() && type.empty()) {
      c.partition_table = true;
      one = absl::StrCat(pttype, " partition table");
    } else if (type == "crypto_LUKS") {
      c.luks = true;
      one = absl::StrCat("LUKS", Value(pr.get(), "VERSION") == "2" ? "2" : "1", " header");
    } else if (usage == "filesystem") {
      c.filesystem = true;
      one = absl::StrCat(type, " file system");
    } else {
      c.other = true;
      one = absl::StrCat(type.empty() ? "unknown" : type, " (", usage.empty() ? "other" : usage, ")");
    }
    if (!offset.empty()) absl::StrAppend(&one, " at offset ", offset);
    if (badcsum) absl::StrAppend(&one, " (bad checksum)");
    what.push_back(std::move(one));
  }
  if (r < 0) {
    return absl::DataLossError(absl::StrCat("probe ", device.path, ": libblkid failed to read it"));
  }
  if (!c.luks && HasLuks2Secondary(fd)) {
    c.luks = true;
    what.push_back("LUKS2 secondary header");
  }
  // What blkid(8) itself would say: more than one signature where one was
  // expected is ambiguous, and not blank either.
  blkid_reset_probe(pr.get());
  blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
  if (blkid_do_safeprobe(pr.get()) == -2) {
    c.other = true;
    what.push_back("ambiguous signatures (blkid -p refuses to pick one)");
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
