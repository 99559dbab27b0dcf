#ifndef NODEWARD_PLATFORM_CONNTRACK_H_
#define NODEWARD_PLATFORM_CONNTRACK_H_

#include <cstdint>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"

namespace nodeward::platform {

// One connection the kernel tracks (TCP or UDP), by its original direction.
struct ConnEntry {
  bool ipv6 = false;
  uint8_t protocol = 0;  // IPPROTO_TCP / IPPROTO_UDP
  absl::uint128 src = 0, dst = 0;  // IPv4 in the low 32 bits
  uint16_t sport = 0, dport = 0;
  // Opened towards this host: the original destination is one of this
  // network namespace's own addresses and the source is not (a connection
  // the VM opened itself, or forwarded traffic, is never inbound).
  bool inbound = false;
  bool operator==(const ConnEntry& o) const {
    return ipv6 == o.ipv6 && protocol == o.protocol && src == o.src && dst == o.dst &&
           sport == o.sport && dport == o.dport;
  }
};

// The connection tracking table of the caller's network namespace
// (ctnetlink). The firewall's `ct state established` accept lets every
// packet of a tracked connection in, so a connection that got in while the
// table was missing outlives the repair unless its entry is deleted.
class Conntrack {
 public:
  virtual ~Conntrack() = default;
  // Every TCP and UDP entry, IPv4 and IPv6.
  virtual absl::StatusOr<std::vector<ConnEntry>> List() = 0;
  // Deletes the entry with that original tuple; OK if it is already gone.
  virtual absl::Status Delete(const ConnEntry& entry) = 0;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_CONNTRACK_H_
