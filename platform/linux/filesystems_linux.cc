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

#include "platform/linux/mountinfo.h"

namespace nodeward::platform {

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
  for (const MountInfo& m : ReadMountInfo()) {
    if (m.target == target) found = m.dev;  // the last one is on top
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
