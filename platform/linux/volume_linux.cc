#include "platform/linux/volume_linux.h"

#include <dirent.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <linux/keyctl.h>
#include <sys/syscall.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
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

extern char** environ;

namespace nodeward::platform {
namespace {

struct CryptFree {
  void operator()(crypt_device* cd) const { crypt_free(cd); }
};
using CryptPtr = std::unique_ptr<crypt_device, CryptFree>;

absl::Status CryptError(int r, absl::string_view what) {
  return absl::ErrnoToStatus(r < 0 ? -r : EIO, what);
}

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

// "maj:min" of every mount in this mount namespace.
std::vector<std::pair<uint64_t, std::string>> Mounts() {
  std::vector<std::pair<uint64_t, std::string>> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 5) continue;
    std::vector<std::string> mm = absl::StrSplit(f[2], ':');
    unsigned maj = 0, min = 0;
    if (mm.size() != 2 || !absl::SimpleAtoi(mm[0], &maj) || !absl::SimpleAtoi(mm[1], &min)) {
      continue;
    }
    // Mount points escape space, tab, newline and backslash as \ooo.
    std::string target;
    for (size_t i = 0; i < f[4].size(); ++i) {
      if (f[4][i] == '\\' && i + 3 < f[4].size()) {
        int v = 0;
        bool ok = true;
        for (int k = 1; k <= 3; ++k) {
          const char c = f[4][i + static_cast<size_t>(k)];
          ok = ok && c >= '0' && c <= '7';
          v = v * 8 + (c - '0');
        }
        if (ok) {
          target.push_back(static_cast<char>(v));
          i += 3;
          continue;
        }
      }
      target.push_back(f[4][i]);
    }
    out.emplace_back(makedev(maj, min), target);
  }
  return out;
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

// The crypt target's table line straight from device-mapper (what
// `dmsetup table` prints): "<cipher> <key> <iv_offset> <maj:min> <start>".
// <key> is ":<bytes>:logon:<description>" when the key sits in the kernel
// keyring, else the key in hex: only its length is kept, and the buffer is
// wiped.
struct DmCrypt {
  std::string cipher;
  int key_bits = 0;
  bool keyring = false;
  std::string key_description;  // of the logon key, e.g. cryptsetup:<uuid>-d0
  uint64_t backing_rdev = 0;
};
absl::StatusOr<DmCrypt> ReadDmCrypt(const std::string& name) {
  int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "open /dev/mapper/control");
  constexpr size_t kSize = 16384;
  std::vector<char> buf(kSize, 0);
  auto* io = reinterpret_cast<dm_ioctl*>(buf.data());
  io->version[0] = DM_VERSION_MAJOR;
  io->data_size = kSize;
  io->data_start = sizeof(dm_ioctl);
  io->flags = DM_STATUS_TABLE_FLAG;
  std::strncpy(io->name, name.c_str(), DM_NAME_LEN - 1);
  const int r = ioctl(fd, DM_TABLE_STATUS, io);
  const int err = errno;
  close(fd);
  DmCrypt out;
  absl::Status status;
  if (r != 0) {
    status = absl::ErrnoToStatus(err, "read the table of " + name);
  } else if (io->target_count != 1 || (io->flags & DM_BUFFER_FULL_FLAG) != 0) {
    status = absl::FailedPreconditionError(name + " is not a single crypt target");
  } else {
    auto* spec = reinterpret_cast<dm_target_spec*>(buf.data() + io->data_start);
    const char* params = reinterpret_cast<const char*>(spec + 1);
    std::vector<std::string> f = absl::StrSplit(std::string(params, strnlen(params, kSize / 2)), ' ');
    if (std::strncmp(spec->target_type, "crypt", DM_MAX_TYPE_NAME) != 0 || f.size() < 5) {
      status = absl::FailedPreconditionError(name + " is not a crypt target");
    } else {
      out.cipher = f[0];
      if (!f[1].empty() && f[1][0] == ':') {
        out.keyring = true;
        std::vector<std::string> k = absl::StrSplit(f[1], absl::MaxSplits(':', 3));
        int bytes = 0;
        if (k.size() > 2 && absl::SimpleAtoi(k[1], &bytes)) out.key_bits = bytes * 8;
        if (k.size() == 4) out.key_description = k[3];
      } else {
        out.key_bits = static_cast<int>(f[1].size() * 4);  // hex
      }
      std::vector<std::string> mm = absl::StrSplit(f[3], ':');
      unsigned maj = 0, min = 0;
      if (mm.size() == 2 && absl::SimpleAtoi(mm[0], &maj) && absl::SimpleAtoi(mm[1], &min)) {
        out.backing_rdev = makedev(maj, min);
      }
      for (std::string& x : f) explicit_bzero(x.data(), x.size());
    }
  }
  explicit_bzero(buf.data(), buf.size());
  if (!status.ok()) return status;
  return out;
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
  const auto mounts = Mounts();
  for (const auto& [node, rdev] : nodes) {
    for (const auto& [dev, target] : mounts) {
      if (dev == rdev) {
        u.mounted = true;
        what.push_back(absl::StrCat(node, " mounted at ", target));
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

absl::StatusOr<std::string> LinuxCrypt::Format(const BlockDevice& device,
                                               absl::Span<const uint8_t> volume_key,
                                               const CryptParams& p) {
  crypt_device* raw = nullptr;
  int r = crypt_init(&raw, device.path.c_str());
  if (r < 0) return CryptError(r, absl::StrCat("crypt_init ", device.path));
  CryptPtr cd(raw);
  // The digest of the volume key (no keyslot exists): PBKDF2-SHA256. The key
  // is 512 random bits, so the iteration count protects nothing; no
  // benchmark.
  crypt_pbkdf_type pbkdf{};
  pbkdf.type = CRYPT_KDF_PBKDF2;
  pbkdf.hash = p.hash.c_str();
  pbkdf.iterations = 1000;
  pbkdf.flags = CRYPT_PBKDF_NO_BENCHMARK;
  r = crypt_set_pbkdf_type(cd.get(), &pbkdf);
  if (r < 0) return CryptError(r, "set the LUKS2 digest hash");
  crypt_params_luks2 params{};
  params.pbkdf = &pbkdf;
  r = crypt_format(cd.get(), CRYPT_LUKS2, p.cipher.c_str(), p.cipher_mode.c_str(), nullptr,
                   reinterpret_cast<const char*>(volume_key.data()), volume_key.size(), &params);
  if (r < 0) return CryptError(r, absl::StrCat("LUKS2 format of ", device.path));
  const char* uuid = crypt_get_uuid(cd.get());
  return std::string(uuid == nullptr ? "" : uuid);
}

absl::Status LinuxCrypt::Activate(const BlockDevice& device, const std::string& name,
                                  absl::Span<const uint8_t> volume_key, const CryptParams& p) {
  crypt_device* raw = nullptr;
  int r = crypt_init(&raw, device.path.c_str());
  if (r < 0) return CryptError(r, absl::StrCat("crypt_init ", device.path));
  CryptPtr cd(raw);
  r = crypt_load(cd.get(), CRYPT_LUKS2, nullptr);
  if (r < 0) return CryptError(r, absl::StrCat("load the LUKS2 header of ", device.path));
  crypt_volume_key_keyring(cd.get(), 1);  // the key goes to the kernel keyring, not the dm table
  uint32_t flags = p.allow_discards ? CRYPT_ACTIVATE_ALLOW_DISCARDS : 0;
  r = crypt_activate_by_volume_key(cd.get(), name.c_str(),
                                   reinterpret_cast<const char*>(volume_key.data()),
                                   volume_key.size(), flags);
  if (r < 0) return CryptError(r, absl::StrCat("activate ", name, " on ", device.path));
  // dm-crypt copied the key when the table was loaded. libcryptsetup leaves
  // its logon key linked in this thread's keyring, which lives as long as
  // the agent's command thread: invalidate it, so the only copy is inside
  // dm-crypt (threats.md case 26).
  absl::StatusOr<DmCrypt> t = ReadDmCrypt(name);
  if (t.ok() && t->keyring && !t->key_description.empty()) {
    for (long ring : {KEY_SPEC_THREAD_KEYRING, KEY_SPEC_PROCESS_KEYRING,
                      KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING}) {
      long id = syscall(SYS_keyctl, KEYCTL_SEARCH, ring, "logon", t->key_description.c_str(), 0);
      if (id > 0) syscall(SYS_keyctl, KEYCTL_INVALIDATE, id);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CryptStatus> LinuxCrypt::Status(const std::string& name) {
  CryptStatus s;
  crypt_status_info info = crypt_status(nullptr, name.c_str());
  if (info == CRYPT_INVALID) {
    // No device-mapper (or no permission): nothing can be active.
    return s;
  }
  if (info == CRYPT_INACTIVE) return s;
  s.active = true;
  crypt_device* raw = nullptr;
  int r = crypt_init_by_name(&raw, name.c_str());
  if (r < 0) {
    // A forced removal that could not finish (the device is held open)
    // leaves the mapping with an error target: no key any more.
    absl::StatusOr<DmCrypt> t = ReadDmCrypt(name);
    if (absl::IsFailedPrecondition(t.status())) {
      s.key_destroyed = true;
      return s;
    }
    return CryptError(r, absl::StrCat("read mapping ", name));
  }
  CryptPtr cd(raw);
  const char* uuid = crypt_get_uuid(cd.get());
  s.uuid = uuid ? uuid : "";
  // Cipher, key size and device from the kernel's table: LUKS2 without a
  // keyslot does not record the key size, and the table is the truth.
  absl::StatusOr<DmCrypt> t = ReadDmCrypt(name);
  if (absl::IsFailedPrecondition(t.status())) {
    s.key_destroyed = true;
    return s;
  }
  if (!t.ok()) return t.status();
  s.cipher = t->cipher;
  s.key_bits = t->key_bits;
  s.key_in_keyring = t->keyring;
  s.backing_rdev = t->backing_rdev;
  return s;
}

absl::StatusOr<LuksHeader> LinuxCrypt::ReadHeader(const BlockDevice& device) {
  crypt_device* raw = nullptr;
  int r = crypt_init(&raw, device.path.c_str());
  if (r < 0) return CryptError(r, absl::StrCat("crypt_init ", device.path));
  CryptPtr cd(raw);
  r = crypt_load(cd.get(), CRYPT_LUKS, nullptr);
  if (r < 0) return CryptError(r, absl::StrCat("no LUKS header on ", device.path));
  LuksHeader h;
  const char* type = crypt_get_type(cd.get());
  h.version = type ? type : "";
  const char* uuid = crypt_get_uuid(cd.get());
  h.uuid = uuid ? uuid : "";
  h.cipher = absl::StrCat(crypt_get_cipher(cd.get()), "-", crypt_get_cipher_mode(cd.get()));
  h.key_bits = crypt_get_volume_key_size(cd.get()) * 8;
  for (int i = 0; i < crypt_keyslot_max(h.version.c_str()); ++i) {
    const crypt_keyslot_info k = crypt_keyslot_status(cd.get(), i);
    if (k != CRYPT_SLOT_INACTIVE && k != CRYPT_SLOT_INVALID) ++h.keyslots;
  }
  return h;
}

absl::Status LinuxCrypt::Deactivate(const std::string& name) {
  int r = crypt_deactivate(nullptr, name.c_str());
  if (r < 0 && r != -ENODEV) return CryptError(r, absl::StrCat("close mapping ", name));
  return absl::OkStatus();
}

namespace {

// A LUKS signature where LUKS1/2 put one: the primary header at 0, or a
// LUKS2 secondary header at one of the offsets the format allows (16 KiB to
// 4 MiB). A header libcryptsetup cannot load (a format cut short) has one.
bool HasLuksSignature(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool found = false;
  static const unsigned char kPrimary[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
  static const unsigned char kSecondary[6] = {'S', 'K', 'U', 'L', 0xba, 0xbe};
  unsigned char buf[6];
  if (pread(fd, buf, 6, 0) == 6 && std::memcmp(buf, kPrimary, 6) == 0) found = true;
  for (off_t off = 16 << 10; !found && off <= (4 << 20); off *= 2) {
    if (pread(fd, buf, 6, off) == 6 && std::memcmp(buf, kSecondary, 6) == 0) found = true;
  }
  close(fd);
  return found;
}

}  // namespace

namespace {

// One device-mapper ioctl on `name` with `extra` bytes after the header.
int DmIoctl(unsigned long cmd, const std::string& name, uint32_t flags, std::vector<char>* buf) {
  int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
  if (fd < 0) return -errno;
  auto* io = reinterpret_cast<dm_ioctl*>(buf->data());
  io->version[0] = DM_VERSION_MAJOR;
  io->data_size = static_cast<uint32_t>(buf->size());
  if (io->data_start == 0) io->data_start = sizeof(dm_ioctl);
  io->flags = flags;
  std::strncpy(io->name, name.c_str(), DM_NAME_LEN - 1);
  int r = ioctl(fd, cmd, io);
  int err = errno;
  close(fd);
  return r == 0 ? 0 : -err;
}

// What `dmsetup wipe_table` does: load a table of one error target of the
// same length, then suspend (without freezing the file system or flushing:
// whatever still holds the device gets I/O errors) and resume, which swaps
// the tables. The old crypt target is destroyed on the swap and dm-crypt
// zeroes its key. The device node stays while something holds it.
absl::Status ReplaceTableWithError(const std::string& name) {
  std::vector<char> buf(16384, 0);
  int r = DmIoctl(DM_TABLE_STATUS, name, 0, &buf);
  if (r == -ENXIO || r == -ENODEV) return absl::OkStatus();  // gone already
  if (r < 0) return absl::ErrnoToStatus(-r, "read the table of " + name);
  auto* io = reinterpret_cast<dm_ioctl*>(buf.data());
  uint64_t length = 0;
  {
    size_t off = io->data_start;
    for (uint32_t i = 0; i < io->target_count && off + sizeof(dm_target_spec) <= buf.size(); ++i) {
      auto* t = reinterpret_cast<dm_target_spec*>(buf.data() + off);
      length = std::max<uint64_t>(length, t->sector_start + t->length);
      if (t->next == 0) break;
      off = io->data_start + t->next;
    }
  }
  std::fill(buf.begin(), buf.end(), 0);  // the status held the key description
  if (length == 0) return absl::FailedPreconditionError("replace the table of " + name + ": empty");
  std::vector<char> load(sizeof(dm_ioctl) + sizeof(dm_target_spec) + 8, 0);
  auto* lio = reinterpret_cast<dm_ioctl*>(load.data());
  lio->data_start = sizeof(dm_ioctl);
  lio->target_count = 1;
  auto* spec = reinterpret_cast<dm_target_spec*>(load.data() + sizeof(dm_ioctl));
  spec->sector_start = 0;
  spec->length = length;
  std::strncpy(spec->target_type, "error", DM_MAX_TYPE_NAME - 1);
  spec->next = 0;
  r = DmIoctl(DM_TABLE_LOAD, name, 0, &load);
  if (r < 0) return absl::ErrnoToStatus(-r, "load an error table for " + name);
  std::vector<char> sus(sizeof(dm_ioctl) + 64, 0);
  r = DmIoctl(DM_DEV_SUSPEND, name, DM_SUSPEND_FLAG | DM_SKIP_LOCKFS_FLAG | DM_NOFLUSH_FLAG, &sus);
  if (r < 0) return absl::ErrnoToStatus(-r, "suspend " + name);
  std::fill(sus.begin(), sus.end(), 0);
  r = DmIoctl(DM_DEV_SUSPEND, name, 0, &sus);  // resume: the error table goes live
  if (r < 0) return absl::ErrnoToStatus(-r, "resume " + name + " with the error table");
  return absl::OkStatus();
}

}  // namespace

absl::Status LinuxCrypt::ForceDeactivate(const std::string& name) {
  int r = crypt_deactivate(nullptr, name.c_str());
  if (r >= 0 || r == -ENODEV) return absl::OkStatus();
  // Held open (a detached file system with files still open): take the key
  // away by swapping in an error table, then try the removal once more.
  if (absl::Status s = ReplaceTableWithError(name); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("force-close mapping ", name, ": ", s.message()));
  }
  std::vector<char> rm(sizeof(dm_ioctl) + 64, 0);
  (void)DmIoctl(DM_DEV_REMOVE, name, 0, &rm);  // EBUSY while held: the node stays
  absl::StatusOr<CryptStatus> st = Status(name);
  if (st.ok() && (!st->active || st->key_destroyed)) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("force-close mapping ", name,
                                          ": the crypt table is still live"));
}

absl::StatusOr<uint64_t> LinuxCrypt::EraseHeader(const BlockDevice& device) {
  uint64_t bytes = 0;
  {
    crypt_device* raw = nullptr;
    int r = crypt_init(&raw, device.path.c_str());
    if (r < 0) return CryptError(r, absl::StrCat("crypt_init ", device.path));
    CryptPtr cd(raw);
    r = crypt_load(cd.get(), CRYPT_LUKS, nullptr);
    if (r < 0 && r != -EINVAL) return CryptError(r, absl::StrCat("read the header of ", device.path));
    if (r == 0) bytes = crypt_get_data_offset(cd.get()) * 512;
  }
  if (bytes == 0 && !HasLuksSignature(device.path)) return uint64_t{0};  // nothing left
  // Both LUKS2 header copies sit at the start, the keyslot area after them,
  // the data at the data offset. A detached-header layout (offset 0) never
  // comes from this agent; erase the default metadata span then.
  if (bytes == 0) bytes = uint64_t{16} << 20;
  bytes = std::min<uint64_t>(bytes, device.size_bytes == 0 ? bytes : device.size_bytes);
  int fd = open(device.path.c_str(), O_WRONLY | O_EXCL | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", device.path, " exclusively"));
  std::vector<uint8_t> buf(1 << 20);
  absl::Status s;
  for (uint64_t off = 0; off < bytes && s.ok();) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - off));
    for (size_t got = 0; got < n;) {
      ssize_t g = getrandom(buf.data() + got, n - got, 0);
      if (g < 0 && errno == EINTR) continue;
      if (g <= 0) {
        s = absl::ErrnoToStatus(errno, "erase header: random bytes");
        break;
      }
      got += static_cast<size_t>(g);
    }
    if (!s.ok()) break;
    ssize_t w = pwrite(fd, buf.data(), n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      s = absl::ErrnoToStatus(w < 0 ? errno : EIO, absl::StrCat("overwrite header of ", device.path));
      break;
    }
    off += static_cast<uint64_t>(w);
  }
  if (s.ok() && fdatasync(fd) != 0) {
    s = absl::ErrnoToStatus(errno, absl::StrCat("flush ", device.path));
  }
  if (s.ok()) ioctl(fd, BLKFLSBUF, 0);  // drop cached copies of the old header
  close(fd);
  if (!s.ok()) return s;
  return bytes;
}

absl::Status LinuxFilesystems::Unmount(const std::string& target, bool lazy) {
  if (umount2(target.c_str(), lazy ? MNT_DETACH : 0) != 0) {
    if (errno == EINVAL || errno == ENOENT) {
      // Not a mount point (any more), or gone: nothing mounted there.
      absl::StatusOr<std::optional<uint64_t>> at = MountedAt(target);
      if (at.ok() && !at->has_value()) return absl::OkStatus();
    }
    return absl::ErrnoToStatus(errno, absl::StrCat(lazy ? "detach " : "unmount ", target));
  }
  return absl::OkStatus();
}

absl::Status LinuxCrypt::CheckAvailable() {
  int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "dm-crypt is not available on this kernel: open /dev/mapper/control: ", strerror(errno),
        " (no device-mapper); nothing was written"));
  }
  // DM_GET_TARGET_VERSION (the target named in the header's name field)
  // loads dm-crypt on demand, as a table load would.
  std::vector<char> buf(sizeof(dm_ioctl) + 256, 0);
  auto* io = reinterpret_cast<dm_ioctl*>(buf.data());
  io->version[0] = DM_VERSION_MAJOR;
  io->data_size = static_cast<uint32_t>(buf.size());
  io->data_start = sizeof(dm_ioctl);
  std::strncpy(io->name, "crypt", DM_NAME_LEN - 1);
  const int r = ioctl(fd, DM_GET_TARGET_VERSION, io);
  const int err = errno;
  close(fd);
  if (r != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "dm-crypt is not available on this kernel: no 'crypt' device-mapper target (",
        strerror(err), "); nothing was written"));
  }
  return absl::OkStatus();
}

absl::Status LinuxFilesystems::CheckMkfs(FsType type) {
  const char* program = type == FsType::kXfs ? "mkfs.xfs" : "mkfs.ext4";
  const char* package = type == FsType::kXfs ? "xfsprogs" : "e2fsprogs";
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    if (access(absl::StrCat(dir, "/", program).c_str(), X_OK) == 0) return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      program, " is not installed (package ", package, "); nothing was written"));
}

absl::Status LinuxFilesystems::Mkfs(const std::string& device, FsType type) {
  std::vector<std::string> argv = type == FsType::kXfs
                                      ? std::vector<std::string>{"mkfs.xfs", "-q", "-f", device}
                                      : std::vector<std::string>{"mkfs.ext4", "-q", "-F", device};
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  // mkfs lives in /sbin and /usr/sbin, which a service's PATH may lack.
  std::vector<std::string> env_s = {"PATH=/usr/sbin:/sbin:/usr/bin:/bin", "LANG=C"};
  std::vector<char*> env;
  for (std::string& e : env_s) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = 0;
  int r = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), env.data());
  if (r != 0) return absl::ErrnoToStatus(r, absl::StrCat("run ", argv[0]));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::ErrnoToStatus(errno, absl::StrCat("wait for ", argv[0]));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " ", device, " failed (status ", status, ")"));
  }
  return absl::OkStatus();
}

absl::Status LinuxFilesystems::Mount(const std::string& device, const std::string& target,
                                     FsType type, const std::string& options) {
  unsigned long flags = 0;
  for (absl::string_view o : absl::StrSplit(options, ',', absl::SkipEmpty())) {
    if (o == "nodev") flags |= MS_NODEV;
    else if (o == "nosuid") flags |= MS_NOSUID;
    else if (o == "noexec") flags |= MS_NOEXEC;
    else if (o == "noatime") flags |= MS_NOATIME;
    else if (o == "relatime") flags |= MS_RELATIME;
    else if (o == "nodiratime") flags |= MS_NODIRATIME;
    else if (o == "lazytime") flags |= MS_LAZYTIME;
    else return absl::InvalidArgumentError(absl::StrCat("mount option ", o, " is not supported"));
  }
  const char* fs = type == FsType::kXfs ? "xfs" : "ext4";
  if (mount(device.c_str(), target.c_str(), fs, flags, nullptr) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("mount ", device, " on ", target));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<uint64_t>> LinuxFilesystems::MountedAt(const std::string& target) {
  std::optional<uint64_t> found;
  for (const auto& [dev, t] : Mounts()) {
    if (t == target) found = dev;  // the last one is on top
  }
  return found;
}

absl::StatusOr<FsUsage> LinuxFilesystems::Usage(const std::string& target) {
  struct statvfs v {};
  if (statvfs(target.c_str(), &v) != 0) return absl::ErrnoToStatus(errno, "statvfs " + target);
  FsUsage u;
  u.size_bytes = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
  u.used_bytes = static_cast<uint64_t>(v.f_blocks - v.f_bfree) * v.f_frsize;
  return u;
}

absl::StatusOr<uint64_t> LinuxFilesystems::DeviceNumber(const std::string& node) {
  struct stat st {};
  if (stat(node.c_str(), &st) != 0) return absl::ErrnoToStatus(errno, "stat " + node);
  return static_cast<uint64_t>(st.st_rdev);
}

absl::Status LinuxFilesystems::MakeDirectories(const std::string& path) {
  std::string cur;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    absl::StrAppend(&cur, "/", part);
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::ErrnoToStatus(errno, "mkdir " + cur);
    }
  }
  return absl::OkStatus();
}

}  // namespace nodeward::platform
