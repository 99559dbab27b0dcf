#include "platform/linux/volume_linux.h"

#include <fcntl.h>
#include <libcryptsetup.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <linux/keyctl.h>
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


namespace nodeward::platform {
namespace {

struct CryptFree {
  void operator()(crypt_device* cd) const { crypt_free(cd); }
};
using CryptPtr = std::unique_ptr<crypt_device, CryptFree>;

absl::Status CryptError(int r, absl::string_view what) {
  return absl::ErrnoToStatus(r < 0 ? -r : EIO, what);
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

}  // namespace

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

}  // namespace nodeward::platform
