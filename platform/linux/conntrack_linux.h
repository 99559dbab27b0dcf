#ifndef NODEWARD_PLATFORM_LINUX_CONNTRACK_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_CONNTRACK_LINUX_H_

#ifndef __linux__
#error "conntrack_linux is Linux-only"
#endif

#include "platform/conntrack.h"

namespace nodeward::platform {

// ctnetlink through Debian's libnetfilter-conntrack; a socket per call, in
// the calling thread's network namespace. "Inbound" is decided against the
// namespace's addresses (getifaddrs) at the time of the List.
class LinuxConntrack final : public Conntrack {
 public:
  absl::StatusOr<std::vector<ConnEntry>> List() override;
  absl::Status Delete(const ConnEntry& entry) override;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_CONNTRACK_LINUX_H_
