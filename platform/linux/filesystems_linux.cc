#include "platform/linux/volume_linux.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
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

#include "agent/common/status_macros.h"
#include "platform/linux/beneath.h"
#include "platform/linux/mountinfo.h"

namespace nodeward::platform {

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

namespace {

// What the kernel said about a failed fsconfig/fsmount ("e ext4: ..."), for
// the error message.
std::string FsContextLog(int fsfd) {
  std::string out;
  char line[512];
  for (int i = 0; i < 8; ++i) {
    const ssize_t n = read(fsfd, line, sizeof(line) - 1);
    if (n <= 0) break;
    if (!out.empty()) out += "; ";
    out.append(line, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

absl::Status LinuxFilesystems::Mount(const std::string& device, const std::string& target,
                                     FsType type, const std::string& options) {
  uint64_t attr = 0;
  bool lazytime = false;
  for (absl::string_view o : absl::StrSplit(options, ',', absl::SkipEmpty())) {
    if (o == "nodev") attr |= MOUNT_ATTR_NODEV;
    else if (o == "nosuid") attr |= MOUNT_ATTR_NOSUID;
    else if (o == "noexec") attr |= MOUNT_ATTR_NOEXEC;
    else if (o == "noatime") attr = (attr & ~uint64_t{MOUNT_ATTR__ATIME}) | MOUNT_ATTR_NOATIME;
    else if (o == "relatime") attr = (attr & ~uint64_t{MOUNT_ATTR__ATIME}) | MOUNT_ATTR_RELATIME;
    else if (o == "nodiratime") attr |= MOUNT_ATTR_NODIRATIME;
    else if (o == "lazytime") lazytime = true;
    else return absl::InvalidArgumentError(absl::StrCat("mount option ", o, " is not supported"));
  }
  ASSIGN_OR_RETURN(ResolvedDir at, ResolveBeneath(roots_, target, Walk::kMountOn));
  const char* fs = type == FsType::kXfs ? "xfs" : "ext4";
  const std::string what = absl::StrCat("mount ", device, " on ", target);
  OwnedFd fsfd(fsopen(fs, FSOPEN_CLOEXEC));
  if (fsfd.get() < 0) return absl::ErrnoToStatus(errno, absl::StrCat(what, ": fsopen ", fs));
  if (fsconfig(fsfd.get(), FSCONFIG_SET_STRING, "source", device.c_str(), 0) != 0 ||
      (lazytime && fsconfig(fsfd.get(), FSCONFIG_SET_FLAG, "lazytime", nullptr, 0) != 0) ||
      fsconfig(fsfd.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat(what, ": ", FsContextLog(fsfd.get())));
  }
  OwnedFd mnt(fsmount(fsfd.get(), FSMOUNT_CLOEXEC, static_cast<unsigned>(attr)));
  if (mnt.get() < 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat(what, ": fsmount ", FsContextLog(fsfd.get())));
  }
  // Attached to the directory the walk opened, not to whatever the path
  // names by now.
  if (move_mount(mnt.get(), "", at.dir.get(), "",
                 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(what, ": move_mount"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<uint64_t>> LinuxFilesystems::MountedAt(const std::string& target) {
  absl::StatusOr<ResolvedDir> at = ResolveBeneath(roots_, target, Walk::kExisting);
  if (absl::IsNotFound(at.status())) return std::optional<uint64_t>();
  if (!at.ok()) return at.status();
  if (!at->mount_point()) return std::optional<uint64_t>();
  // The mount on top of the directory, by its id; its device from the
  // kernel's table (what mountinfo says of that id).
  for (const MountInfo& m : ReadMountInfo()) {
    if (m.id == at->mnt_id) return std::optional<uint64_t>(m.dev);
  }
  return std::optional<uint64_t>(at->dev);
}

absl::Status LinuxFilesystems::Unmount(const std::string& target, bool lazy) {
  absl::StatusOr<ResolvedDir> at = ResolveBeneath(roots_, target, Walk::kExisting);
  if (absl::IsNotFound(at.status())) return absl::OkStatus();  // gone: nothing mounted there
  if (!at.ok()) return at.status();
  if (!at->mount_point()) return absl::OkStatus();
  // Through the verified parent (its own fd pins only the mount below), by
  // name, never following a link; our fd on the mount's root would make a
  // plain unmount EBUSY, so it goes first.
  at->dir.reset();
  const std::string via = absl::StrCat("/proc/self/fd/", at->parent.get(), "/", at->name);
  if (umount2(via.c_str(), (lazy ? MNT_DETACH : 0) | UMOUNT_NOFOLLOW) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(lazy ? "detach " : "unmount ", target));
  }
  return absl::OkStatus();
}

absl::StatusOr<FsUsage> LinuxFilesystems::Usage(const std::string& target) {
  ASSIGN_OR_RETURN(ResolvedDir at, ResolveBeneath(roots_, target, Walk::kExisting));
  struct statvfs v {};
  if (fstatvfs(at.dir.get(), &v) != 0) return absl::ErrnoToStatus(errno, "statvfs " + target);
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
  return ResolveBeneath(roots_, path, Walk::kCreate).status();
}

}  // namespace nodeward::platform
