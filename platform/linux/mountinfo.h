#ifndef NODEWARD_PLATFORM_LINUX_MOUNTINFO_H_
#define NODEWARD_PLATFORM_LINUX_MOUNTINFO_H_

#include <cstdint>
#include <string>
#include <vector>

namespace nodeward::platform {

// One line of /proc/self/mountinfo.
struct MountInfo {
  uint64_t id = 0;         // the mount id (statx STATX_MNT_ID gives the same)
  uint64_t parent_id = 0;  // the mount it sits on
  uint64_t dev = 0;        // st_dev of the mounted file system (major:minor)
  std::string target;      // the mount point, unescaped (as text: for messages only)
};

// Every mount in this mount namespace, in the order the kernel lists them
// (a mount stacked on another comes after it).
std::vector<MountInfo> ReadMountInfo();

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_MOUNTINFO_H_
