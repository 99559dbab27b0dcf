#ifndef NODEWARD_AGENT_FIREWALL_CIDR_H_
#define NODEWARD_AGENT_FIREWALL_CIDR_H_

#include <string>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeward::firewall {

enum class Family { kIpv4, kIpv6 };

// An address as an unsigned integer: IPv4 in the low 32 bits.
using Address = absl::uint128;

struct Cidr {
  Family family = Family::kIpv4;
  Address network = 0;  // host bits cleared
  int prefix = 0;
  // The text had host bits set (e.g. 10.1.2.3/8): accepted, normalised,
  // and reported back to the sender.
  bool had_host_bits = false;
};

// Parses "a.b.c.d[/n]" or an IPv6 address "[/n]" (no prefix = one host).
// INVALID_ARGUMENT naming the text for a bad address, a prefix out of range
// (/33, /129), a non-decimal or signed prefix, or an IPv4-mapped IPv6
// address (::ffff:0:0/96: written as IPv4 instead, or the two families
// would disagree about it).
absl::StatusOr<Cidr> ParseCidr(absl::string_view text);

// Canonical text: network address and prefix ("10.0.0.0/8", "2001:db8::/32").
std::string FormatCidr(const Cidr& cidr);

// First and last address a CIDR covers.
Address FirstAddress(const Cidr& cidr);
Address LastAddress(const Cidr& cidr);

// A closed range [first, last] of one family.
struct Interval {
  Address first = 0;
  Address last = 0;
  bool operator==(const Interval& o) const { return first == o.first && last == o.last; }
};

// CIDRs of one family with any overlap, nesting and adjacency become the
// minimal sorted list of disjoint, non-adjacent intervals: the form the
// kernel's interval sets hold. CIDRs of the other family are ignored.
std::vector<Interval> Normalise(const std::vector<Cidr>& cidrs, Family family);

// True if `address` lies in one of `intervals` (sorted, disjoint).
bool Contains(const std::vector<Interval>& intervals, Address address);

// True for addresses a VPC-peered service may use: RFC 1918, 100.64/10
// (shared), 169.254/16 (link local) for IPv4; fc00::/7 (ULA) and fe80::/10
// for IPv6. A CIDR is private when all of it is.
bool IsPrivate(const Cidr& cidr);

// True for 0.0.0.0/0 and ::/0.
bool IsEverything(const Cidr& cidr);

}  // namespace nodeward::firewall

#endif  // NODEWARD_AGENT_FIREWALL_CIDR_H_
