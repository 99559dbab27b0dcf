#ifndef NODEWARD_PLATFORM_PACKET_FILTER_H_
#define NODEWARD_PLATFORM_PACKET_FILTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"

namespace nodeward::platform {

// The agent's own nftables table (`inet <table>`), as data. The agent never
// touches any other table.
struct FilterInterval {
  absl::uint128 first = 0;  // IPv4 in the low 32 bits
  absl::uint128 last = 0;   // inclusive
};

struct FilterSet {
  std::string name;  // [a-z0-9_]{1,31}
  bool ipv6 = false;
  std::vector<FilterInterval> intervals;  // sorted, disjoint, non-adjacent
};

struct FilterPortRange {
  uint16_t first = 0;
  uint16_t last = 0;
};

// One accept rule in the input chain. Exactly one match kind is used:
// loopback, established/related, ICMP types, or (family + optional source
// set + optional protocol/ports).
struct FilterRule {
  enum class Kind { kLoopback, kEstablished, kIcmp, kIcmpV6, kSource };
  Kind kind = Kind::kSource;
  std::vector<uint8_t> icmp_types;  // kIcmp / kIcmpV6
  bool ipv6 = false;                // kSource
  std::string source_set;           // kSource: empty = any source of the family
  enum class Protocol { kAny, kTcp, kUdp };
  Protocol protocol = Protocol::kAny;
  std::vector<FilterPortRange> ports;  // with kTcp/kUdp; empty = any port
  std::string comment;                 // why the rule is there (stored in the rule)
};

// Input base chain with policy drop, then the rules in order.
struct FilterRuleset {
  std::vector<FilterSet> sets;
  std::vector<FilterRule> rules;
};

// Side effects on the kernel packet filter. Thread-compatible.
class PacketFilter {
 public:
  virtual ~PacketFilter() = default;
  // Replaces the whole table with `ruleset` in one transaction: either the
  // old table stays or the new one is in place, never a mix. Established
  // connections are unaffected (conntrack state lives outside the table).
  // INVALID_ARGUMENT for a ruleset that cannot be expressed; the kernel's
  // errno otherwise (the transaction then changed nothing).
  virtual absl::Status ReplaceTable(const FilterRuleset& ruleset) = 0;
  // Removes the table; OK if it was absent.
  virtual absl::Status DeleteTable() = 0;
  // Whether the table exists.
  virtual absl::StatusOr<bool> TableExists() = 0;
};

using PacketFilterPtr = std::unique_ptr<PacketFilter>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_PACKET_FILTER_H_
