#include "agent/firewall/firewall_spec.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"

namespace nodeward::firewall {
namespace {

bool ValidName(const std::string& s) {
  // 24 so that "svc_<name>_v4" fits nftables' 31-character set names.
  if (s.empty() || s.size() > 24) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0))) return false;
  }
  return true;
}

absl::Status Bad(absl::string_view where, absl::string_view why) {
  return WithReason(absl::InvalidArgumentError(absl::StrCat("firewall ", where, ": ", why)),
                    reason::kFirewallSpecInvalid);
}

// The open/private rules for one CIDR; `text` is how it was sent.
absl::Status CheckOne(const Cidr& c, absl::string_view text, const std::string& where,
                      bool private_only, std::vector<Cidr>* out,
                      std::vector<std::string>* normalised) {
  if (IsEverything(c)) {
    return Bad(where, absl::StrCat("'", text, "' opens the service to every address; send "
                                   "allow_all instead, so that opening it is signed as such"));
  }
  if (private_only && !IsPrivate(c)) {
    return WithReason(
        absl::InvalidArgumentError(absl::StrCat(
            "firewall ", where, ": '", text,
            "' is not a private range and private_only is set (docs/firewall.md: private)")),
        reason::kFirewallCidrNotPrivate);
  }
  if (c.had_host_bits) normalised->push_back(absl::StrCat(text, " -> ", FormatCidr(c)));
  out->push_back(c);
  return absl::OkStatus();
}

// Parses a list of CIDRs for `where`, applying the open/private rules.
absl::Status ParseList(const std::vector<absl::string_view>& texts, const std::string& where,
                       bool private_only, std::vector<Cidr>* out,
                       std::vector<std::string>* normalised) {
  out->reserve(out->size() + texts.size());
  for (absl::string_view t : texts) {
    absl::StatusOr<Cidr> c = ParseCidr(t);
    if (!c.ok()) return Bad(where, c.status().message());
    RETURN_IF_ERROR(CheckOne(*c, t, where, private_only, out, normalised));
  }
  return absl::OkStatus();
}

// Records in a packed list (a truncated tail counts as one, refused later).
size_t CountPacked(absl::string_view b) {
  size_t n = 0;
  for (size_t i = 0; i < b.size(); ++n) i += 1 + (static_cast<uint8_t>(b[i]) >= 64 ? 16 : 4);
  return n;
}

// The packed form: records of [IPv4: prefix (0-32) | IPv6: 64 + prefix
// (64-192)][address, network order]. Same refusals as the text form: a
// prefix out of range, an IPv4-mapped IPv6 address, a truncated record.
absl::Status ParsePacked(absl::string_view b, const std::string& where, bool private_only,
                         std::vector<Cidr>* out, std::vector<std::string>* normalised) {
  size_t i = 0;
  for (size_t record = 0; i < b.size(); ++record) {
    const uint8_t head = static_cast<uint8_t>(b[i]);
    const bool v6 = head >= 64;
    const int prefix = v6 ? head - 64 : head;
    const size_t n = v6 ? 16 : 4;
    if (i + 1 + n > b.size()) {
      return Bad(where, absl::StrCat("packed CIDR record ", record, " is truncated"));
    }
    if (prefix > (v6 ? 128 : 32)) {
      return Bad(where, absl::StrCat("packed CIDR record ", record, ": prefix /", prefix,
                                     " is out of range"));
    }
    Address a = 0;
    for (size_t k = 0; k < n; ++k) a = (a << 8) | static_cast<uint8_t>(b[i + 1 + k]);
    i += 1 + n;
    Cidr raw;
    raw.family = v6 ? Family::kIpv6 : Family::kIpv4;
    raw.network = a;
    raw.prefix = prefix;
    if (v6 && (a >> 32) == 0xffff) {
      return Bad(where, absl::StrCat("packed CIDR record ", record, " (", FormatCidr(raw),
                                     ") is IPv4-mapped: send it as IPv4"));
    }
    const int width = v6 ? 128 : 32;
    const Address host = prefix == width ? Address(0) : ((Address(1) << (width - prefix)) - 1);
    Cidr c = raw;
    c.network = a & ~host;
    c.had_host_bits = c.network != a;
    RETURN_IF_ERROR(CheckOne(c, FormatCidr(raw), where, private_only, out, normalised));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ValidatedFirewall> ValidateFirewall(const FirewallSpec& spec,
                                                   uint64_t highest_generation,
                                                   const ValidationLimits& limits) {
  if (spec.generation <= highest_generation) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat(
                          "firewall generation ", spec.generation, " is not above ",
                          highest_generation,
                          ", the highest ever applied (unconfirmed and rolled-back ones count: a "
                          "generation is never reused; health: firewall.highest_generation)")),
                      reason::kFirewallGenerationStale);
  }
  if (spec.services.size() > limits.max_services) {
    return WithReason(absl::ResourceExhaustedError(absl::StrCat("firewall: ", spec.services.size(),
                                                                " services exceed the cap of ",
                                                                limits.max_services)),
                      reason::kFirewallTooLarge);
  }
  ValidatedFirewall v;
  v.generation = spec.generation;
  v.private_only = spec.private_only;
  size_t elements = 0;
  std::set<std::string> names;
  for (const ServiceSpec& s : spec.services) {
    const std::string where = absl::StrCat("service '", s.name.substr(0, 40), "'");
    if (!ValidName(s.name)) return Bad(where, "name is not [a-z0-9][a-z0-9-]{0,23}");
    if (!names.insert(s.name).second) return Bad(where, "listed twice");
    if (s.ports.empty()) return Bad(where, "no ports");
    Service out;
    out.name = s.name;
    out.protocol = s.protocol;
    for (const PortRange& p : s.ports) {
      if (p.first == 0 || p.last == 0 || p.first > 65535 || p.last > 65535) {
        return Bad(where, absl::StrCat("port ", p.first == 0 || p.first > 65535 ? p.first : p.last,
                                       " is outside 1-65535"));
      }
      if (p.last < p.first) {
        return Bad(where, absl::StrCat("port range ", p.first, "-", p.last, " is inverted"));
      }
      out.ports.push_back(p);
    }
    std::sort(out.ports.begin(), out.ports.end(),
              [](const PortRange& a, const PortRange& b) { return a.first < b.first; });
    std::vector<PortRange> merged;
    for (const PortRange& p : out.ports) {
      if (!merged.empty() && p.first <= merged.back().last + 1) {
        merged.back().last = std::max(merged.back().last, p.last);
      } else {
        merged.push_back(p);
      }
    }
    out.ports = std::move(merged);
    if (s.allow_all) {
      if (!s.allowed_cidrs.empty() || !s.allowed_packed.empty()) {
        return Bad(where, "allow_all and allowed_cidrs together: say one or the other");
      }
      if (spec.private_only) return Bad(where, "allow_all is refused when private_only is set");
      out.allow_all = true;
    } else {
      // The cap before any parsing: memory stays bounded by it.
      const size_t sent = s.allowed_cidrs.size() + CountPacked(s.allowed_packed);
      if (elements + sent > limits.max_elements) {
        return WithReason(absl::ResourceExhaustedError(absl::StrCat(
                              "firewall: ", elements + sent, " CIDRs exceed the cap of ",
                              limits.max_elements)),
                          reason::kFirewallTooLarge);
      }
      std::vector<Cidr> cidrs;
      cidrs.reserve(sent);
      RETURN_IF_ERROR(ParseList(s.allowed_cidrs, where, spec.private_only, &cidrs, &v.normalised));
      RETURN_IF_ERROR(
          ParsePacked(s.allowed_packed, where, spec.private_only, &cidrs, &v.normalised));
      elements += cidrs.size();
      out.allowed_v4 = Normalise(cidrs, Family::kIpv4);
      out.allowed_v6 = Normalise(cidrs, Family::kIpv6);
    }
    v.services.push_back(std::move(out));
  }
  std::vector<Cidr> peers;
  RETURN_IF_ERROR(ParseList(spec.internal_peers, "internal_peers", spec.private_only, &peers,
                            &v.normalised));
  elements += peers.size();
  if (elements > limits.max_elements) {
    return WithReason(absl::ResourceExhaustedError(absl::StrCat(
                          "firewall: ", elements, " CIDRs exceed the cap of ", limits.max_elements)),
                      reason::kFirewallTooLarge);
  }
  v.peers_v4 = Normalise(peers, Family::kIpv4);
  v.peers_v6 = Normalise(peers, Family::kIpv6);
  std::sort(v.services.begin(), v.services.end(),
            [](const Service& a, const Service& b) { return a.name < b.name; });
  return v;
}

}  // namespace nodeward::firewall
