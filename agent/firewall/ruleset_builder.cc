#include "agent/firewall/ruleset_builder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "platform/filter_plan.h"

namespace nodeward::firewall {
namespace {

using platform::FilterChain;
using platform::FilterInterval;
using platform::FilterRule;
using platform::FilterRuleset;
using platform::FilterSet;

// ICMP types IPv4 needs: destination unreachable (incl. PMTU "fragmentation
// needed"), echo request, time exceeded, parameter problem.
const std::vector<uint8_t> kIcmpTypes = {3, 8, 11, 12};
// ICMPv6: errors incl. packet too big (1-4), echo request (128), and
// neighbour discovery: router solicit/advert, neighbour solicit/advert (133-136).
const std::vector<uint8_t> kIcmpV6Types = {1, 2, 3, 4, 128, 133, 134, 135, 136};
// Multicast listener discovery: query (130), v1 report and done (131, 132),
// v2 report (143). RFC 2710/3810 send them from link-local addresses only;
// without them a switch doing MLD snooping stops forwarding the solicited-node
// multicast neighbour discovery relies on.
const std::vector<uint8_t> kMldTypes = {130, 131, 132, 143};

using Iter = std::vector<Interval>::const_iterator;

void Split(Iter first, Iter begin, Iter end, Address lo, int prefix, int width, size_t max,
           std::vector<ShardRange>* out) {
  // [begin, end) are the intervals that overlap the block.
  if (begin == end) return;
  const Address hi = prefix == 0 ? (width == 128 ? ~Address(0) : (Address(1) << width) - 1)
                                 : lo + ((Address(1) << (width - prefix)) - 1);
  if (static_cast<size_t>(end - begin) <= max || prefix == width) {
    out->push_back(ShardRange{{lo, hi}, prefix, static_cast<size_t>(begin - first),
                              static_cast<size_t>(end - first)});
    return;
  }
  const Address mid = lo + (Address(1) << (width - prefix - 1));  // first of the upper half
  // Lower half: intervals that start below mid. Upper: those that end at or
  // above mid (one interval may straddle and be in both).
  Iter lower_end = std::lower_bound(begin, end, mid,
                                    [](const Interval& i, Address a) { return i.first < a; });
  Iter upper_begin = std::lower_bound(begin, end, mid,
                                      [](const Interval& i, Address a) { return i.last < a; });
  Split(first, begin, lower_end, lo, prefix + 1, width, max, out);
  Split(first, upper_begin, end, mid, prefix + 1, width, max, out);
}

// The shard's intervals, clipped to its block, straight into the set.
std::vector<FilterInterval> Members(const std::vector<Interval>& in, const ShardRange& r) {
  std::vector<FilterInterval> out;
  out.reserve(r.end - r.begin);
  for (size_t i = r.begin; i < r.end; ++i) {
    out.push_back({std::max(in[i].first, r.block.first), std::min(in[i].last, r.block.last)});
  }
  return out;
}

std::vector<FilterInterval> ToFilter(const std::vector<Interval>& in) {
  std::vector<FilterInterval> out;
  out.reserve(in.size());
  for (const Interval& i : in) out.push_back({i.first, i.last});
  return out;
}

// The block's network address in hex, only as many digits as its prefix
// needs (the rest are zero): "0a_8" is 10.0.0.0/8.
std::string BlockName(Address first, int prefix, bool ipv6) {
  const int width = ipv6 ? 128 : 32;
  const int digits = std::max(1, (prefix + 3) / 4);
  Address a = first >> (width - digits * 4);
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    out[static_cast<size_t>(i)] = "0123456789abcdef"[static_cast<int>(a & 0xf)];
    a >>= 4;
  }
  return absl::StrCat(out, "_", prefix);
}

// Rules that accept the sources in `v4`/`v6` (one rule per port range). A
// list up to one shard is a plain set; a bigger one is a verdict map over
// address blocks that jumps to one chain per shard, each with its own set:
// two lookups per new packet, and a change touches only its shard's set.
void AddSourceRules(FilterRuleset* r, const std::string& base, const std::vector<Interval>& v4,
                    const std::vector<Interval>& v6, FilterRule::Protocol proto,
                    const std::vector<platform::FilterPortRange>& ports,
                    const std::string& comment, size_t max_per_shard) {
  for (bool ipv6 : {false, true}) {
    const auto& iv = ipv6 ? v6 : v4;
    if (iv.empty()) continue;
    const std::string name = absl::StrCat(base, ipv6 ? "_v6" : "_v4");
    FilterRule rule;
    rule.kind = FilterRule::Kind::kSource;
    rule.ipv6 = ipv6;
    rule.protocol = proto;
    rule.comment = comment;
    if (iv.size() <= max_per_shard) {
      r->sets.push_back(FilterSet{name, ipv6, ToFilter(iv), {}});
      rule.source_set = name;
    } else {
      FilterSet map{name + "_map", ipv6, {}, {}};
      for (const ShardRange& s :
           ShardRanges(iv, ipv6 ? Family::kIpv6 : Family::kIpv4, max_per_shard)) {
        const std::string shard = absl::StrCat(name, "_", BlockName(s.block.first, s.prefix, ipv6));
        map.intervals.push_back({s.block.first, s.block.last});
        map.targets.push_back(shard);
        r->sets.push_back(FilterSet{shard, ipv6, Members(iv, s), {}});
        FilterRule accept;
        accept.kind = FilterRule::Kind::kSource;
        accept.ipv6 = ipv6;
        accept.source_set = shard;
        accept.comment = absl::StrCat(comment, " (shard)");
        r->chains.push_back(FilterChain{shard, {accept}});
      }
      rule.source_map = map.name;
      r->sets.push_back(std::move(map));
    }
    if (ports.empty()) {
      r->rules.push_back(rule);
    } else {
      for (const auto& p : ports) {
        rule.ports = p;
        r->rules.push_back(rule);
      }
    }
  }
}

}  // namespace

std::vector<ShardRange> ShardRanges(const std::vector<Interval>& intervals, Family family,
                                    size_t max_per_shard) {
  std::vector<ShardRange> out;
  const int width = family == Family::kIpv6 ? 128 : 32;
  Split(intervals.begin(), intervals.begin(), intervals.end(), 0, 0, width,
        std::max<size_t>(max_per_shard, 1), &out);
  return out;
}

std::vector<Shard> ShardIntervals(const std::vector<Interval>& intervals, Family family,
                                  size_t max_per_shard) {
  std::vector<Shard> out;
  for (const ShardRange& r : ShardRanges(intervals, family, max_per_shard)) {
    Shard s;
    s.block = r.block;
    s.prefix = r.prefix;
    for (const FilterInterval& m : Members(intervals, r)) s.members.push_back({m.first, m.last});
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

FilterRuleset Content(const ManagementAccess& m, const ValidatedFirewall* state,
                      size_t max_per_shard) {
  FilterRuleset r;
  auto fixed = [&r](FilterRule::Kind kind, uint8_t icmp_type, const char* comment) {
    FilterRule rule;
    rule.kind = kind;
    rule.icmp_type = icmp_type;
    rule.comment = comment;
    r.rules.push_back(std::move(rule));
  };
  fixed(FilterRule::Kind::kLoopback, 0, "nodeward: loopback");
  fixed(FilterRule::Kind::kEstablished, 0, "nodeward: replies and established connections");
  for (uint8_t t : kIcmpTypes) {
    fixed(FilterRule::Kind::kIcmp, t,
          "nodeward: ICMP IPv4 needs (unreachable/PMTU, echo, time exceeded)");
  }
  for (uint8_t t : kIcmpV6Types) {
    fixed(FilterRule::Kind::kIcmpV6, t, "nodeward: ICMPv6 errors, echo, neighbour discovery");
  }
  // The VM's own addressing (invariant 5): replies conntrack cannot tie to
  // a request sent to a broadcast or multicast address.
  fixed(FilterRule::Kind::kDhcpReply, 0, "nodeward: DHCPv4 replies to this VM's client");
  r.rules.back().ipv6 = false;
  fixed(FilterRule::Kind::kDhcpReply, 0, "nodeward: DHCPv6 replies from link-local servers");
  r.rules.back().ipv6 = true;
  for (uint8_t t : kMldTypes) {
    fixed(FilterRule::Kind::kIcmpV6LinkLocal, t, "nodeward: MLD from link-local routers");
  }

  std::vector<platform::FilterPortRange> mgmt_ports;
  for (uint16_t p : m.tcp_ports) mgmt_ports.push_back({p, p});
  AddSourceRules(&r, "mgmt", Normalise(m.cidrs, Family::kIpv4), Normalise(m.cidrs, Family::kIpv6),
                 FilterRule::Protocol::kTcp, mgmt_ports,
                 "nodeward: management access (local config)", max_per_shard);
  if (state == nullptr) return r;

  AddSourceRules(&r, "peers", state->peers_v4, state->peers_v6, FilterRule::Protocol::kAny, {},
                 "nodeward: internal peers", max_per_shard);
  for (const Service& s : state->services) {
    const auto proto = s.protocol == Protocol::kTcp ? FilterRule::Protocol::kTcp
                                                    : FilterRule::Protocol::kUdp;
    std::vector<platform::FilterPortRange> ports;
    for (const PortRange& p : s.ports) {
      ports.push_back({static_cast<uint16_t>(p.first), static_cast<uint16_t>(p.last)});
    }
    const std::string comment = absl::StrCat("nodeward: service ", s.name);
    if (s.allow_all) {
      for (bool ipv6 : {false, true}) {
        FilterRule rule;
        rule.kind = FilterRule::Kind::kSource;
        rule.ipv6 = ipv6;
        rule.protocol = proto;
        rule.comment = comment + " (allow_all)";
        for (const auto& p : ports) {
          rule.ports = p;
          r.rules.push_back(rule);
        }
      }
      continue;
    }
    AddSourceRules(&r, absl::StrCat("svc_", absl::StrReplaceAll(s.name, {{"-", "_"}})),
                   s.allowed_v4, s.allowed_v6, proto, ports, comment, max_per_shard);
  }
  return r;
}

}  // namespace

// Every set leaves with its digest (platform::SetDigest), so planning against
// the last committed ruleset skips unchanged shards without comparing them.
FilterRuleset BuildRuleset(const ManagementAccess& m, const ValidatedFirewall* state,
                           size_t max_per_shard) {
  FilterRuleset r = Content(m, state, max_per_shard);
  for (FilterSet& s : r.sets) s.digest = platform::SetDigest(s);
  return r;
}

}  // namespace nodeward::firewall
