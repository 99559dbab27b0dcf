#ifndef NODEWARD_PLATFORM_LINUX_BENEATH_H_
#define NODEWARD_PLATFORM_LINUX_BENEATH_H_

// Resolving a mount point without trusting its text: every component is
// opened relative to the directory before it (openat2 with RESOLVE_BENEATH
// and RESOLVE_NO_SYMLINKS), from "/" down, so a symbolic link, a ".." or a
// component swapped during the walk cannot redirect it. Every directory the
// walk passes through, the allowed root and everything above it included,
// must be owned by root and writable by nobody else: otherwise its owner
// could rename what the agent checked out from under it.

#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nodeward::platform {

class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& o) noexcept : fd_(o.release()) {}
  OwnedFd& operator=(OwnedFd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { reset(); }
  int get() const { return fd_; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

enum class Walk {
  kCreate,    // make missing components below the root (0755, root-owned); the
              // final one must be a root-owned directory
  kMountOn,   // everything exists; the final one is a root-owned directory
              // with nothing mounted on it
  kExisting,  // everything exists; the final one may be anyone's (it is the
              // root of what is mounted there, e.g. the database's directory)
};

struct ResolvedDir {
  OwnedFd parent;      // O_PATH fd of the directory holding `name`
  OwnedFd dir;         // O_PATH fd of the final component (top of any mount on it)
  std::string name;    // the final component
  uint64_t parent_mnt_id = 0;
  uint64_t mnt_id = 0;  // != parent_mnt_id: something is mounted on it
  uint64_t dev = 0;     // st_dev of `dir`
  bool mount_point() const { return mnt_id != parent_mnt_id; }
};

// `target` must be strictly below one of `roots` (absolute, normalised).
// INVALID_ARGUMENT for a target outside the roots or with ".", ".." or empty
// components; NOT_FOUND for a missing component (kMountOn, kExisting);
// FAILED_PRECONDITION naming the component for a symbolic link, a
// non-directory, a foreign owner, group/other write permission, or (kMountOn)
// something already mounted there.
absl::StatusOr<ResolvedDir> ResolveBeneath(const std::vector<std::string>& roots,
                                           const std::string& target, Walk walk);

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_BENEATH_H_
