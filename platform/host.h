#ifndef NODEWARD_PLATFORM_HOST_H_
#define NODEWARD_PLATFORM_HOST_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace nodeward::platform {

// Host figures health reports (sysinfo, /proc/meminfo, adjtimex).
struct HostSample {
  uint64_t uptime_seconds = 0;
  double load[3] = {0, 0, 0};
  uint32_t cpus = 0;
  uint64_t memory_total_bytes = 0;
  uint64_t memory_available_bytes = 0;
  // Clock discipline from adjtimex(2) with modes 0 (a read: no capability
  // needed, nothing changed). clock_known false: adjtimex was refused.
  bool clock_known = false;
  bool clock_synchronised = false;
  int64_t clock_max_error_us = 0;
  int64_t clock_estimated_error_us = 0;
  std::string clock_error;  // why clock_known is false
};

struct DiskSample {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
  uint64_t free_inodes = 0;
};

// Reads only. Thread-safe.
class HostProbe {
 public:
  virtual ~HostProbe() = default;
  virtual absl::StatusOr<HostSample> Sample() = 0;
  // statvfs of the file system holding `path`.
  virtual absl::StatusOr<DiskSample> Disk(const std::string& path) = 0;
};

using HostProbePtr = std::unique_ptr<HostProbe>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_HOST_H_
