#ifndef NODEWARD_AGENT_FIREWALL_RULESET_BUILDER_H_
#define NODEWARD_AGENT_FIREWALL_RULESET_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "agent/firewall/cidr.h"
#include "agent/firewall/firewall_spec.h"
#include "platform/packet_filter.h"

namespace nodeward::firewall {

// Always present, from the agent's local config: no command removes it.
struct ManagementAccess {
  std::vector<Cidr> cidrs;
  std::vector<uint16_t> tcp_ports;
};

// A list larger than this is split into shards (docs/firewall.md): on this
// kernel every commit that touches an interval set rebuilds that whole set,
// so a one-element change must only touch a small set.
inline constexpr size_t kMaxShardIntervals = 1024;

// One shard of an allow-list: the address block [block.first, block.last]
// (a CIDR-aligned block) and the list's intervals inside it, clipped.
struct Shard {
  Interval block;
  int prefix = 0;
  std::vector<Interval> members;
};

// A shard as a range of the input list: intervals [begin, end) overlap
// `block` (the first and last may stick out of it and are clipped).
struct ShardRange {
  Interval block;
  int prefix = 0;
  size_t begin = 0;
  size_t end = 0;
};
std::vector<ShardRange> ShardRanges(const std::vector<Interval>& intervals, Family family,
                                    size_t max_per_shard = kMaxShardIntervals);

// Splits sorted, disjoint `intervals` by halving the address space until
// every block holds at most `max_per_shard` intervals; empty blocks are
// dropped. Deterministic in the list alone (a restart with the same list
// gives the same shards), and a change only alters the shards it falls in
// (or splits/merges one).
std::vector<Shard> ShardIntervals(const std::vector<Interval>& intervals, Family family,
                                  size_t max_per_shard = kMaxShardIntervals);

// The kernel ruleset for a validated state; `state` null gives the
// management-only baseline (first boot, before any ApplyFirewall). Rule
// order and the reason for each rule: docs/firewall.md.
platform::FilterRuleset BuildRuleset(const ManagementAccess& management,
                                     const ValidatedFirewall* state,
                                     size_t max_per_shard = kMaxShardIntervals);

}  // namespace nodeward::firewall

#endif  // NODEWARD_AGENT_FIREWALL_RULESET_BUILDER_H_
