#include "platform/filter_eval.h"

#include <algorithm>
#include <netinet/in.h>

namespace nodeward::platform {
namespace {

const FilterSet* FindSet(const FilterRuleset& r, const std::string& name) {
  for (const FilterSet& s : r.sets) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// The index of the interval of `s` holding `a`, or -1.
long Find(const FilterSet& s, absl::uint128 a) {
  auto it = std::upper_bound(s.intervals.begin(), s.intervals.end(), a,
                             [](absl::uint128 v, const FilterInterval& i) { return v < i.first; });
  if (it == s.intervals.begin()) return -1;
  --it;
  return a <= it->last ? static_cast<long>(it - s.intervals.begin()) : -1;
}

bool LinkLocal(const ConnEntry& c) { return c.ipv6 && (c.src >> 118) == (0xfe80 >> 6); }

// A verdict for the packet from `rule`: accept, jump (to `chain`), or no match.
enum class Verdict { kNoMatch, kAccept, kJump };

Verdict Match(const FilterRuleset& r, const FilterRule& rule, const ConnEntry& c,
              std::string* chain) {
  switch (rule.kind) {
    case FilterRule::Kind::kLoopback:      // not on lo
    case FilterRule::Kind::kEstablished:   // NEW
    case FilterRule::Kind::kIcmp:
    case FilterRule::Kind::kIcmpV6:
    case FilterRule::Kind::kIcmpV6LinkLocal:
    case FilterRule::Kind::kForeign:
      return Verdict::kNoMatch;
    case FilterRule::Kind::kDhcpReply:
      if (c.protocol != IPPROTO_UDP || c.ipv6 != rule.ipv6) return Verdict::kNoMatch;
      if (rule.ipv6) {
        return LinkLocal(c) && c.sport == 547 && c.dport == 546 ? Verdict::kAccept
                                                                : Verdict::kNoMatch;
      }
      return c.sport == 67 && c.dport == 68 ? Verdict::kAccept : Verdict::kNoMatch;
    case FilterRule::Kind::kSource:
      break;
  }
  if (rule.ipv6 != c.ipv6) return Verdict::kNoMatch;
  if (!rule.source_set.empty()) {
    const FilterSet* s = FindSet(r, rule.source_set);
    if (s == nullptr || Find(*s, c.src) < 0) return Verdict::kNoMatch;
  }
  if (rule.protocol != FilterRule::Protocol::kAny) {
    const uint8_t want =
        rule.protocol == FilterRule::Protocol::kTcp ? IPPROTO_TCP : IPPROTO_UDP;
    if (c.protocol != want) return Verdict::kNoMatch;
    if (rule.ports.has_value() && (c.dport < rule.ports->first || c.dport > rule.ports->last)) {
      return Verdict::kNoMatch;
    }
  }
  if (!rule.source_map.empty()) {
    const FilterSet* m = FindSet(r, rule.source_map);
    const long i = m == nullptr ? -1 : Find(*m, c.src);
    if (i < 0 || static_cast<size_t>(i) >= m->targets.size()) return Verdict::kNoMatch;
    *chain = m->targets[static_cast<size_t>(i)];
    return Verdict::kJump;
  }
  return Verdict::kAccept;
}

bool Evaluate(const FilterRuleset& r, const std::vector<FilterRule>& rules, const ConnEntry& c,
              int depth) {
  for (const FilterRule& rule : rules) {
    std::string chain;
    switch (Match(r, rule, c, &chain)) {
      case Verdict::kNoMatch:
        continue;
      case Verdict::kAccept:
        return true;
      case Verdict::kJump: {
        if (depth > 4) return false;
        for (const FilterChain& ch : r.chains) {
          // A regular chain without a verdict returns to the next rule.
          if (ch.name == chain && Evaluate(r, ch.rules, c, depth + 1)) return true;
        }
        continue;
      }
    }
  }
  return false;  // policy drop
}

}  // namespace

bool AcceptsNew(const FilterRuleset& rules, const ConnEntry& c) {
  return Evaluate(rules, rules.rules, c, 0);
}

}  // namespace nodeward::platform
