#ifndef NODEWARD_PLATFORM_FILTER_PLAN_H_
#define NODEWARD_PLATFORM_FILTER_PLAN_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "platform/packet_filter.h"

namespace nodeward::platform {

// FilterSet::digest for `s` as it is now (never 0). Per process: digests are
// compared within one agent run, never stored.
uint64_t SetDigest(const FilterSet& s);

// The smallest transaction that turns `current` into `desired`: element
// adds/deletes for sets and maps that stay, chains rewritten only where
// their rules differ, objects that are not desired removed. A missing table
// or a wrong base chain (or a set whose type changed) gives a full replace.
// Pure: no kernel access.
// With `by_reference`, new sets are not copied into the change but pointed
// to (add_set_refs): `desired` must then outlive the change.
FilterChange PlanChange(const KernelTable& current, const FilterRuleset& desired,
                        bool by_reference = false);

// Applies `change` to `table` with the kernel's rules (a whole transaction
// or nothing): EEXIST-like ALREADY_EXISTS for an overlapping element or a
// duplicate object, NOT_FOUND for a missing one, FAILED_PRECONDITION for an
// object still referenced. Used by the fake and by tests of the planner.
absl::Status ApplyChange(const FilterChange& change, KernelTable* table);

// Human summary, e.g. "+2 -1 elements in 1 set, input chain rewritten".
std::string Describe(const FilterChange& change);

// Number of intervals across the sets (maps excluded), by family.
struct ElementCounts {
  uint64_t ipv4 = 0;
  uint64_t ipv6 = 0;
};
ElementCounts CountElements(const FilterRuleset& ruleset);

// Canonical bytes of a ruleset (sets and chains sorted by name), handed to
// `sink` in pieces, so equal rulesets give equal bytes; the agent hashes
// them for health.
void Canonical(const FilterRuleset& ruleset, const std::function<void(absl::string_view)>& sink);

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_FILTER_PLAN_H_
