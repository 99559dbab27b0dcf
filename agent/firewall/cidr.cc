#include "agent/firewall/cidr.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace nodeward::firewall {
namespace {

int Bits(Family f) { return f == Family::kIpv4 ? 32 : 128; }

// Mask of the host bits for a prefix.
Address HostMask(Family f, int prefix) {
  const int host = Bits(f) - prefix;
  if (host == 0) return 0;
  if (host == 128) return ~absl::uint128(0);
  return (absl::uint128(1) << host) - 1;
}

absl::Status Bad(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("CIDR '", text.substr(0, 64), "': ", why));
}

}  // namespace

absl::StatusOr<Cidr> ParseCidr(absl::string_view text) {
  std::string addr(text);
  int prefix = -1;
  size_t slash = text.find('/');
  if (slash != absl::string_view::npos) {
    absl::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return absl::ascii_isdigit(c); }) ||
        !absl::SimpleAtoi(p, &prefix)) {
      return Bad(text, "the prefix length is not a decimal number");
    }
    addr = std::string(text.substr(0, slash));
  }
  Cidr c;
  unsigned char buf[16];
  if (addr.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, addr.c_str(), buf) != 1) return Bad(text, "not an IPv4 address");
    c.family = Family::kIpv4;
    c.network = (absl::uint128(buf[0]) << 24) | (absl::uint128(buf[1]) << 16) |
                (absl::uint128(buf[2]) << 8) | absl::uint128(buf[3]);
  } else {
    if (inet_pton(AF_INET6, addr.c_str(), buf) != 1) return Bad(text, "not an IPv6 address");
    c.family = Family::kIpv6;
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; ++i) hi = (hi << 8) | buf[i];
    for (int i = 8; i < 16; ++i) lo = (lo << 8) | buf[i];
    c.network = absl::MakeUint128(hi, lo);
    if (hi == 0 && (lo >> 32) == 0xffff) {
      return Bad(text, "IPv4-mapped IPv6 addresses are refused; write the IPv4 address");
    }
  }
  if (prefix < 0) prefix = Bits(c.family);
  if (prefix > Bits(c.family)) {
    return Bad(text, absl::StrCat("prefix /", prefix, " is longer than ", Bits(c.family), " bits"));
  }
  c.prefix = prefix;
  const Address host = HostMask(c.family, prefix);
  c.had_host_bits = (c.network & host) != 0;
  c.network &= ~host;
  return c;
}

std::string FormatCidr(const Cidr& c) {
  char out[INET6_ADDRSTRLEN];
  if (c.family == Family::kIpv4) {
    uint32_t v = static_cast<uint32_t>(c.network);
    unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
    inet_ntop(AF_INET, b, out, sizeof(out));
  } else {
    unsigned char b[16];
    uint64_t hi = absl::Uint128High64(c.network), lo = absl::Uint128Low64(c.network);
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
    for (int i = 0; i < 8; ++i) b[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
    inet_ntop(AF_INET6, b, out, sizeof(out));
  }
  return absl::StrCat(out, "/", c.prefix);
}

Address FirstAddress(const Cidr& c) { return c.network; }
Address LastAddress(const Cidr& c) { return c.network | HostMask(c.family, c.prefix); }

std::vector<Interval> Normalise(const std::vector<Cidr>& cidrs, Family family) {
  std::vector<Interval> in;
  for (const Cidr& c : cidrs) {
    if (c.family == family) in.push_back({FirstAddress(c), LastAddress(c)});
  }
  std::sort(in.begin(), in.end(), [](const Interval& a, const Interval& b) {
    return a.first < b.first || (a.first == b.first && a.last > b.last);
  });
  const Address max = family == Family::kIpv4 ? Address(0xffffffffu) : ~absl::uint128(0);
  std::vector<Interval> out;
  for (const Interval& i : in) {
    // Merge when overlapping or adjacent (out.back().last + 1 == i.first).
    if (!out.empty() && (out.back().last == max || i.first <= out.back().last + 1)) {
      out.back().last = std::max(out.back().last, i.last);
    } else {
      out.push_back(i);
    }
  }
  return out;
}

bool Contains(const std::vector<Interval>& intervals, Address a) {
  auto it = std::upper_bound(intervals.begin(), intervals.end(), a,
                             [](Address x, const Interval& i) { return x < i.first; });
  if (it == intervals.begin()) return false;
  --it;
  return a <= it->last;
}

bool IsPrivate(const Cidr& c) {
  struct Range {
    Family family;
    const char* cidr;
  };
  static const Range kPrivate[] = {
      {Family::kIpv4, "10.0.0.0/8"},     {Family::kIpv4, "172.16.0.0/12"},
      {Family::kIpv4, "192.168.0.0/16"}, {Family::kIpv4, "100.64.0.0/10"},
      {Family::kIpv4, "169.254.0.0/16"}, {Family::kIpv6, "fc00::/7"},
      {Family::kIpv6, "fe80::/10"},
  };
  for (const Range& r : kPrivate) {
    if (r.family != c.family) continue;
    Cidr p = ParseCidr(r.cidr).value();
    if (FirstAddress(c) >= FirstAddress(p) && LastAddress(c) <= LastAddress(p)) return true;
  }
  return false;
}

bool IsEverything(const Cidr& c) { return c.prefix == 0; }

}  // namespace nodeward::firewall
