#include "platform/linux/beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace nodeward::platform {
namespace {

int OpenAt2(int dirfd, const char* name, uint64_t resolve) {
  open_how how{};
  // No O_NOFOLLOW: with it a final link would be opened itself (ENOTDIR),
  // without it RESOLVE_NO_SYMLINKS refuses it with ELOOP.
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = resolve;
  for (;;) {
    const long r = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    if (r >= 0) return static_cast<int>(r);
    if (errno == ENOSYS) break;
    if (errno != EINTR && errno != EAGAIN) return -1;
  }
  // No openat2: systemd's RestrictSUIDSGID=yes blocks it with ENOSYS (its
  // seccomp filter cannot see the mode inside struct open_how), and so do
  // kernels before 5.6. `name` is one component, never "." or "..", so a
  // plain openat of it cannot leave `dirfd` (RESOLVE_BENEATH holds); a link
  // is opened as itself (O_NOFOLLOW) and refused, as RESOLVE_NO_SYMLINKS
  // would. Magic links live only in /proc.
  const int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
    const int err = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

struct Facts {
  uint64_t mnt_id = 0;
  uint64_t dev = 0;
  uid_t uid = 0;
  mode_t mode = 0;
};

absl::StatusOr<Facts> Stat(int fd, const std::string& what) {
  struct statx sx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID, &sx) !=
      0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("stat ", what));
  }
  if ((sx.stx_mask & STATX_MNT_ID) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("stat ", what, ": this kernel reports no mount id (needs Linux 5.8)"));
  }
  Facts f;
  f.mnt_id = sx.stx_mnt_id;
  f.dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  f.uid = sx.stx_uid;
  f.mode = sx.stx_mode;
  return f;
}

absl::Status CheckGuarded(const Facts& f, const std::string& path, const std::string& target) {
  if (f.uid != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "mount point ", target, ": ", path, " is owned by uid ", f.uid,
        ", not root (its owner could move what the agent checked); nothing was mounted"));
  }
  if ((f.mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "mount point ", target, ": ", path, " is writable by group or others (mode ",
        absl::StrCat(absl::Hex(f.mode & 07777)), "); nothing was mounted"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ResolvedDir> ResolveBeneath(const std::vector<std::string>& roots,
                                           const std::string& target, Walk walk) {
  const std::string* root = nullptr;
  for (const std::string& r : roots) {
    if (r.size() > 1 && absl::StartsWith(target, r) && target.size() > r.size() + 1 &&
        target[r.size()] == '/') {
      root = &r;
    }
  }
  if (root == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("mount point ", target,
                                                   " is not below an allowed root (",
                                                   absl::StrJoin(roots, ", "), ")"));
  }
  std::vector<std::string> parts = absl::StrSplit(target.substr(1), '/');
  const size_t root_depth = std::count(root->begin(), root->end(), '/');
  for (const std::string& p : parts) {
    if (p.empty() || p == "." || p == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("mount point ", target, " has an empty, '.' or '..' component"));
    }
  }

  OwnedFd cur(OpenAt2(AT_FDCWD, "/", RESOLVE_NO_SYMLINKS));
  if (cur.get() < 0) return absl::ErrnoToStatus(errno, "open /");
  std::string path;
  ResolvedDir out;
  Facts facts;
  absl::StatusOr<Facts> f = Stat(cur.get(), "/");
  if (!f.ok()) return f.status();
  facts = *f;
  if (absl::Status s = CheckGuarded(facts, "/", target); !s.ok()) return s;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& name = parts[i];
    const bool last = i + 1 == parts.size();
    path += "/" + name;
    if (walk == Walk::kCreate && i >= root_depth) {
      if (mkdirat(cur.get(), name.c_str(), 0755) == 0) {
        // 0755 whatever the umask (the service runs with 0077): the database
        // must be able to reach its mount point. Not following a link: the
        // walk below refuses one anyway.
        if (fchmodat(cur.get(), name.c_str(), 0755, 0) != 0) {
          return absl::ErrnoToStatus(errno,
                                     absl::StrCat("mount point ", target, ": chmod 0755 ", path));
        }
      } else if (errno != EEXIST) {
        return absl::ErrnoToStatus(errno, absl::StrCat("mount point ", target, ": mkdir ", path));
      }
    }
    OwnedFd next(OpenAt2(cur.get(), name.c_str(),
                         RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS));
    if (next.get() < 0) {
      const int err = errno;
      if (err == ELOOP) {
        return absl::FailedPreconditionError(absl::StrCat(
            "mount point ", target, ": ", path,
            " is a symbolic link (a mount point is resolved without following links); "
            "nothing was mounted"));
      }
      if (err == ENOTDIR) {
        return absl::FailedPreconditionError(
            absl::StrCat("mount point ", target, ": ", path, " is not a directory"));
      }
      if (err == ENOENT) {
        return absl::NotFoundError(absl::StrCat("mount point ", target, ": ", path, " does not exist"));
      }
      return absl::ErrnoToStatus(err, absl::StrCat("mount point ", target, ": open ", path));
    }
    absl::StatusOr<Facts> nf = Stat(next.get(), path);
    if (!nf.ok()) return nf.status();
    if (!last || walk != Walk::kExisting) {
      if (absl::Status s = CheckGuarded(*nf, path, target); !s.ok()) return s;
    }
    if (last) {
      out.parent_mnt_id = facts.mnt_id;
      out.mnt_id = nf->mnt_id;
      out.dev = nf->dev;
      out.name = name;
      out.parent = std::move(cur);
      out.dir = std::move(next);
    } else {
      cur = std::move(next);
    }
    facts = *nf;
  }
  if (walk == Walk::kMountOn && out.mount_point()) {
    return absl::FailedPreconditionError(
        absl::StrCat("mount point ", target, ": something is already mounted there"));
  }
  return out;
}

}  // namespace nodeward::platform
