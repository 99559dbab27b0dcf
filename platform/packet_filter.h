#ifndef NODEWARD_PLATFORM_PACKET_FILTER_H_
#define NODEWARD_PLATFORM_PACKET_FILTER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nodeward::platform {

// The agent's own nftables table (`inet <table>`), as data. The agent never
// touches any other table. One FilterRule is one kernel rule.
struct FilterInterval {
  absl::uint128 first = 0;  // IPv4 in the low 32 bits
  absl::uint128 last = 0;   // inclusive
  bool operator==(const FilterInterval& o) const { return first == o.first && last == o.last; }
  bool operator<(const FilterInterval& o) const {
    return first < o.first || (first == o.first && last < o.last);
  }
};

// A named interval set of source addresses, or (when `targets` is not empty)
// an interval verdict map: intervals[i] -> jump to chain targets[i].
struct FilterSet {
  std::string name;  // [a-z0-9_]{1,128}
  bool ipv6 = false;
  std::vector<FilterInterval> intervals;  // sorted, disjoint (adjacent only in maps)
  std::vector<std::string> targets;       // maps only, parallel to intervals
  // Optional fingerprint of (ipv6, intervals, targets) from SetDigest(), set
  // by whoever built the whole set (the ruleset builder, a read-back); 0 =
  // unknown. Whatever edits `intervals` or `targets` afterwards must reset it
  // to 0. PlanChange takes equal non-zero digests as equal content, so an
  // unchanged shard costs no comparison of its elements (at a million entries
  // that comparison alone, 2 x 35 MB, took 5-9 ms). Not part of ==.
  uint64_t digest = 0;
  bool is_map() const { return !targets.empty(); }
  bool operator==(const FilterSet& o) const {
    return name == o.name && ipv6 == o.ipv6 && intervals == o.intervals && targets == o.targets;
  }
};

struct FilterPortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool operator==(const FilterPortRange& o) const { return first == o.first && last == o.last; }
};

// One accept rule. Exactly one match kind is used: loopback,
// established/related, one ICMP type, or (family + optional source set +
// optional protocol/port range). kSource with `source_map` jumps through
// the verdict map named there instead of accepting. kForeign is a rule read
// back from the kernel that the agent did not write (never written).
// The VM's own addressing, which conntrack cannot match (the request went to
// a multicast or broadcast address): kDhcpReply is a DHCP reply, `ipv6`
// false = UDP 67 -> 68 from any source (a DHCPv4 server's address is not
// link-local), true = UDP 547 -> 546 from fe80::/10 only; kIcmpV6LinkLocal
// is one ICMPv6 type (MLD) from fe80::/10 only.
struct FilterRule {
  // New kinds go last: the number is part of the content hash.
  enum class Kind {
    kLoopback, kEstablished, kIcmp, kIcmpV6, kSource, kForeign, kDhcpReply, kIcmpV6LinkLocal
  };
  Kind kind = Kind::kSource;
  uint8_t icmp_type = 0;      // kIcmp / kIcmpV6 / kIcmpV6LinkLocal
  bool ipv6 = false;          // kSource, kDhcpReply
  std::string source_set;     // kSource: empty = any source of the family
  std::string source_map;     // kSource: verdict map (then source_set is empty)
  enum class Protocol { kAny, kTcp, kUdp };
  Protocol protocol = Protocol::kAny;
  std::optional<FilterPortRange> ports;  // with kTcp/kUdp; none = any port
  std::string comment;                   // why the rule is there (stored in the rule)
  bool operator==(const FilterRule& o) const {
    return kind == o.kind && icmp_type == o.icmp_type && ipv6 == o.ipv6 &&
           source_set == o.source_set && source_map == o.source_map && protocol == o.protocol &&
           ports == o.ports && comment == o.comment;
  }
};

// A regular chain (a jump target of a verdict map).
struct FilterChain {
  std::string name;
  std::vector<FilterRule> rules;
  bool operator==(const FilterChain& o) const { return name == o.name && rules == o.rules; }
};

// Input base chain (hook input, priority 0, policy drop) with `rules` in
// order, plus regular chains and sets.
struct FilterRuleset {
  std::vector<FilterSet> sets;
  std::vector<FilterRule> rules;
  std::vector<FilterChain> chains;
  // The table's flags (NFT_TABLE_F_*) as read back; the desired table has
  // none (`dormant` would switch every rule off).
  uint32_t table_flags = 0;
};

// The table as read back from the kernel.
struct KernelTable {
  uint32_t genid = 0;  // nftables ruleset generation the read saw
  bool exists = false;
  // The input chain exists as a base chain with hook input, priority 0,
  // policy drop, type filter, and the table holds nothing the model cannot
  // express (another base chain, a set of another type). False means only a
  // full replace can repair it.
  bool structure_ok = false;
  FilterRuleset ruleset;
};

// One transaction. Applied in this order, which keeps every reference
// valid at each step: `replace_table` (delete whatever is there and start
// empty) or `create_table`; new sets and their elements; new chains and
// their rules; element deletes then adds on kept sets and maps; the input
// chain flushed and rewritten (when `base_rules` is set) and the regular
// chains in `rewrite_chains`; verdict maps to delete (they jump to chains);
// chains to flush and delete; sets to delete.
struct FilterChange {
  bool create_table = false;
  bool replace_table = false;  // implies creating the base chain
  std::vector<FilterSet> add_sets;  // with their elements
  // More new sets, pointing into the ruleset the change was planned from
  // (PlanChange with by_reference: no copy of a million intervals); that
  // ruleset must outlive the change.
  std::vector<const FilterSet*> add_set_refs;
  // Every new set, by value or by reference.
  std::vector<const FilterSet*> AllAddSets() const {
    std::vector<const FilterSet*> out;
    out.reserve(add_sets.size() + add_set_refs.size());
    for (const FilterSet& s : add_sets) out.push_back(&s);
    out.insert(out.end(), add_set_refs.begin(), add_set_refs.end());
    return out;
  }
  std::vector<FilterChain> add_chains;
  struct Elements {
    std::string set;
    bool ipv6 = false;
    std::vector<FilterInterval> intervals;
    std::vector<std::string> targets;  // maps
  };
  std::vector<Elements> delete_elements;
  std::vector<Elements> add_elements;
  std::optional<std::vector<FilterRule>> base_rules;
  std::vector<FilterChain> rewrite_chains;  // regular chains flushed and rewritten
  std::vector<std::string> delete_maps;
  std::vector<std::string> delete_chains;
  std::vector<std::string> delete_sets;

  bool empty() const {
    return !create_table && !replace_table && add_sets.empty() && add_set_refs.empty() &&
           add_chains.empty() &&
           delete_elements.empty() && add_elements.empty() && !base_rules.has_value() &&
           rewrite_chains.empty() && delete_maps.empty() && delete_chains.empty() &&
           delete_sets.empty();
  }
};

// A change to the ruleset seen on the netlink monitor, one per committed
// transaction (at its NEWGEN message).
struct FilterEvent {
  uint32_t genid = 0;
  bool touched_table = false;  // the transaction changed the agent's table
  bool own = false;            // committed by this process
  int pid = 0;                 // committer, if the kernel said
  std::string process;         // committer's name, if the kernel said
  std::string what;            // e.g. "rule added, set elements deleted"
  bool lost = false;           // events were dropped (ENOBUFS): re-read everything
  // The transaction left the agent's table deleted (`nft flush ruleset`,
  // `nft delete table`): the table is known to be absent at `genid`, so the
  // repair needs no read-back first.
  bool table_deleted = false;
};

class FilterWatch {
 public:
  virtual ~FilterWatch() = default;
  // Waits up to `timeout` for events. Empty on timeout.
  virtual absl::StatusOr<std::vector<FilterEvent>> Wait(absl::Duration timeout) = 0;
};

// Side effects on the kernel packet filter. Thread-compatible.
class PacketFilter {
 public:
  virtual ~PacketFilter() = default;
  // Reads the agent's table back (exists=false if absent).
  virtual absl::StatusOr<KernelTable> Read() = 0;
  // Commits `change` in one transaction, only if the ruleset generation is
  // still `genid`; returns the new generation. ABORTED if another writer
  // committed since (nothing changed: re-read and re-plan); UNKNOWN if the
  // outcome could not be read (acks lost): re-read to learn it;
  // INVALID_ARGUMENT for a change that cannot be expressed; the kernel's
  // errno otherwise (the transaction changed nothing).
  virtual absl::StatusOr<uint32_t> Commit(const FilterChange& change, uint32_t genid) = 0;
  // Subscribes to ruleset changes.
  virtual absl::StatusOr<std::unique_ptr<FilterWatch>> Watch() = 0;
  // Other tables' base chains on the prerouting or input hook that can drop
  // what the agent's table accepts (policy drop, drop or reject rules): a
  // drop anywhere is final, so the agent's management accept cannot
  // override them. One description each; empty when there are none.
  virtual absl::StatusOr<std::vector<std::string>> ForeignDrops() = 0;
};

using PacketFilterPtr = std::unique_ptr<PacketFilter>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_PACKET_FILTER_H_
