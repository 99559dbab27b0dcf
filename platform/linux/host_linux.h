#ifndef NODEWARD_PLATFORM_LINUX_HOST_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_HOST_LINUX_H_

#include "platform/host.h"

namespace nodeward::platform {

// sysinfo(2), /proc/meminfo's MemAvailable, adjtimex(3) (read-only; glibc
// makes it the clock_adjtime(2) syscall, which the unit's seccomp filter
// allows), statvfs(3).
class LinuxHostProbe final : public HostProbe {
 public:
  absl::StatusOr<HostSample> Sample() override;
  absl::StatusOr<DiskSample> Disk(const std::string& path) override;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_HOST_LINUX_H_
