// FilterRule <-> nftables rule expressions.
#include "platform/linux/nft/codec.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "platform/filter_plan.h"

namespace nodeward::platform::nft {
namespace {

nftnl_expr* Meta(uint32_t key) {
  auto* e = nftnl_expr_alloc("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  return e;
}
nftnl_expr* Cmp(uint32_t op, const void* data, uint32_t len) {
  auto* e = nftnl_expr_alloc("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  return e;
}
nftnl_expr* Payload(uint32_t base, uint32_t offset, uint32_t len) {
  auto* e = nftnl_expr_alloc("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  return e;
}
nftnl_expr* Accept() {
  auto* e = nftnl_expr_alloc("immediate");
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
  return e;
}
nftnl_expr* Lookup(const std::string& set, bool verdict_map, uint32_t set_id) {
  auto* e = nftnl_expr_alloc("lookup");
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  if (verdict_map) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
  if (set_id != 0) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
  return e;
}



uint16_t PortOrder(uint16_t p) { return htons(p); }

// fe80::/10: the first two address bytes masked with ffc0.
const uint8_t kLinkLocalMask[2] = {0xff, 0xc0};
const uint8_t kLinkLocalPrefix[2] = {0xfe, 0x80};
const uint8_t kZero2[2] = {0, 0};

}  // namespace

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// Expression order per rule kind is fixed, so that ParseRule can read back
// exactly what BuildRule writes:
//   source accept: nfproto, [saddr lookup], [l4proto, [dport]], accept
//   source vmap:   nfproto, [l4proto, [dport]], saddr vmap lookup
nftnl_rule* BuildRule(const std::string& table, const std::string& chain, const FilterRule& fr,
                      const std::map<std::string, uint32_t>& set_ids) {
  nftnl_rule* r = nftnl_rule_alloc();
  nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain.c_str());
  nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
  auto id_of = [&](const std::string& name) {
    auto it = set_ids.find(name);
    return it == set_ids.end() ? 0u : it->second;
  };
  bool verdict = false;
  switch (fr.kind) {
    case FilterRule::Kind::kLoopback: {
      char lo[IFNAMSIZ] = "lo";
      nftnl_rule_add_expr(r, Meta(NFT_META_IIFNAME));
      nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, lo, IFNAMSIZ));
      break;
    }
    case FilterRule::Kind::kEstablished: {
      auto* ct = nftnl_expr_alloc("ct");
      nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
      nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
      nftnl_rule_add_expr(r, ct);
      uint32_t mask = kCtEstablished | kCtRelated, zero = 0;
      auto* bw = nftnl_expr_alloc("bitwise");
      nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
      nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
      nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_LEN, 4);
      nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
      nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
      nftnl_rule_add_expr(r, bw);
      nftnl_rule_add_expr(r, Cmp(NFT_CMP_NEQ, &zero, 4));
      break;
    }
    case FilterRule::Kind::kIcmp:
    case FilterRule::Kind::kIcmpV6: {
      const bool v6 = fr.kind == FilterRule::Kind::kIcmpV6;
      uint8_t family = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
      uint8_t proto =
          v6 ? static_cast<uint8_t>(IPPROTO_ICMPV6) : static_cast<uint8_t>(IPPROTO_ICMP);
      uint8_t type = fr.icmp_type;
      nftnl_rule_add_expr(r, Meta(NFT_META_NFPROTO));
      nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &family, 1));
      nftnl_rule_add_expr(r, Meta(NFT_META_L4PROTO));
      nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &proto, 1));
      nftnl_rule_add_expr(r, Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1));
      nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &type, 1));
      break;
    }
    case FilterRule::Kind::kDhcpReply:
    case FilterRule::Kind::kIcmpV6LinkLocal: {
      const bool v6 = fr.ipv6 || fr.kind == FilterRule::Kind::kIcmpV6LinkLocal;
      uint8_t family = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
      nftnl_rule_add_expr(r, Meta(NFT_META_NFPROTO));
      nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &family, 1));
      if (v6) {  // ip6 saddr fe80::/10
        nftnl_rule_add_expr(r, Payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 2));
        auto* bw = nftnl_expr_alloc("bitwise");
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_LEN, 2);
        nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_MASK, kLinkLocalMask, 2);
        nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_XOR, kZero2, 2);
        nftnl_rule_add_expr(r, bw);
        nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, kLinkLocalPrefix, 2));
      }
      if (fr.kind == FilterRule::Kind::kIcmpV6LinkLocal) {
        uint8_t proto = IPPROTO_ICMPV6, type = fr.icmp_type;
        nftnl_rule_add_expr(r, Meta(NFT_META_L4PROTO));
        nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &proto, 1));
        nftnl_rule_add_expr(r, Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1));
        nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &type, 1));
      } else {
        uint8_t proto = IPPROTO_UDP;
        const uint16_t sport = PortOrder(v6 ? 547 : 67), dport = PortOrder(v6 ? 546 : 68);
        nftnl_rule_add_expr(r, Meta(NFT_META_L4PROTO));
        nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &proto, 1));
        nftnl_rule_add_expr(r, Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2));
        nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &sport, 2));
        nftnl_rule_add_expr(r, Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2));
        nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &dport, 2));
      }
      break;
    }
    case FilterRule::Kind::kSource: {
      uint8_t family = fr.ipv6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
      nftnl_rule_add_expr(r, Meta(NFT_META_NFPROTO));
      nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &family, 1));
      auto saddr = [&] {
        return fr.ipv6 ? Payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16)
                       : Payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4);
      };
      if (!fr.source_set.empty()) {
        nftnl_rule_add_expr(r, saddr());
        nftnl_rule_add_expr(r, Lookup(fr.source_set, false, id_of(fr.source_set)));
      }
      if (fr.protocol != FilterRule::Protocol::kAny) {
        uint8_t proto = fr.protocol == FilterRule::Protocol::kTcp
                            ? static_cast<uint8_t>(IPPROTO_TCP)
                            : static_cast<uint8_t>(IPPROTO_UDP);
        nftnl_rule_add_expr(r, Meta(NFT_META_L4PROTO));
        nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &proto, 1));
        if (fr.ports.has_value()) {
          nftnl_rule_add_expr(r, Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2));
          uint16_t from = PortOrder(fr.ports->first), to = PortOrder(fr.ports->last);
          if (fr.ports->first == fr.ports->last) {
            nftnl_rule_add_expr(r, Cmp(NFT_CMP_EQ, &from, 2));
          } else {
            auto* range = nftnl_expr_alloc("range");
            nftnl_expr_set_u32(range, NFTNL_EXPR_RANGE_SREG, NFT_REG_1);
            nftnl_expr_set_u32(range, NFTNL_EXPR_RANGE_OP, NFT_RANGE_EQ);
            nftnl_expr_set(range, NFTNL_EXPR_RANGE_FROM_DATA, &from, 2);
            nftnl_expr_set(range, NFTNL_EXPR_RANGE_TO_DATA, &to, 2);
            nftnl_rule_add_expr(r, range);
          }
        }
      }
      if (!fr.source_map.empty()) {
        nftnl_rule_add_expr(r, saddr());
        nftnl_rule_add_expr(r, Lookup(fr.source_map, true, id_of(fr.source_map)));
        verdict = true;
      }
      break;
    }
    case FilterRule::Kind::kForeign:
      break;  // never written (checked by the caller)
  }
  if (!verdict) nftnl_rule_add_expr(r, Accept());
  if (!fr.comment.empty()) {
    std::unique_ptr<nftnl_udata_buf, decltype(&nftnl_udata_buf_free)> ud(
        nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN), nftnl_udata_buf_free);
    nftnl_udata_put_strz(ud.get(), kUdataRuleComment, fr.comment.substr(0, 120).c_str());
    nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud.get()),
                        nftnl_udata_buf_len(ud.get()));
  }
  return r;
}

namespace {

// Reads a kernel rule back into the model; anything that is not exactly
// what BuildRule writes becomes kForeign (with its text), which never equals
// a desired rule, so the planner rewrites the chain.
class RuleReader {
 public:
  explicit RuleReader(nftnl_rule* r) {
    nftnl_expr_iter* it = nftnl_expr_iter_create(r);
    for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it)) {
      exprs_.push_back(e);
    }
    nftnl_expr_iter_destroy(it);
  }
  std::optional<FilterRule> Parse() {
    FilterRule out;
    if (Meta(NFT_META_IIFNAME)) {
      char lo[IFNAMSIZ] = "lo";
      if (!CmpEq(NFT_CMP_EQ, std::string(lo, IFNAMSIZ)) || !AcceptEnd()) return std::nullopt;
      out.kind = FilterRule::Kind::kLoopback;
      return out;
    }
    if (Is("ct")) {
      if (nftnl_expr_get_u32(exprs_[i_], NFTNL_EXPR_CT_KEY) != NFT_CT_STATE) return std::nullopt;
      ++i_;
      if (!Is("bitwise")) return std::nullopt;
      uint32_t len = 0;
      const void* mask = nftnl_expr_get(exprs_[i_], NFTNL_EXPR_BITWISE_MASK, &len);
      const uint32_t want = kCtEstablished | kCtRelated;
      if (mask == nullptr || len != 4 || std::memcmp(mask, &want, 4) != 0) return std::nullopt;
      ++i_;
      if (!CmpEq(NFT_CMP_NEQ, std::string(4, '\0')) || !AcceptEnd()) return std::nullopt;
      out.kind = FilterRule::Kind::kEstablished;
      return out;
    }
    if (!Meta(NFT_META_NFPROTO)) return std::nullopt;
    std::string fam;
    if (!CmpValue(NFT_CMP_EQ, &fam) || fam.size() != 1) return std::nullopt;
    const bool v6 = static_cast<uint8_t>(fam[0]) == NFPROTO_IPV6;
    if (!v6 && static_cast<uint8_t>(fam[0]) != NFPROTO_IPV4) return std::nullopt;
    out.ipv6 = v6;
    out.kind = FilterRule::Kind::kSource;
    if (v6 && LinkLocalSource()) return Addressing(true, out);
    if (!v6) {
      if (std::optional<FilterRule> dhcp = Addressing(false, out)) return dhcp;
    }
    if (Saddr(v6)) {
      if (!LookupSet(false, &out.source_set)) return std::nullopt;
    }
    if (Meta(NFT_META_L4PROTO)) {
      std::string proto;
      if (!CmpValue(NFT_CMP_EQ, &proto) || proto.size() != 1) return std::nullopt;
      const uint8_t p = static_cast<uint8_t>(proto[0]);
      const uint8_t icmp = static_cast<uint8_t>(v6 ? static_cast<int>(IPPROTO_ICMPV6) : static_cast<int>(IPPROTO_ICMP));
      if (p == icmp && out.source_set.empty()) {
        if (!PayloadAt(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1)) return std::nullopt;
        std::string type;
        if (!CmpValue(NFT_CMP_EQ, &type) || type.size() != 1 || !AcceptEnd()) return std::nullopt;
        out.kind = v6 ? FilterRule::Kind::kIcmpV6 : FilterRule::Kind::kIcmp;
        out.ipv6 = false;
        out.icmp_type = static_cast<uint8_t>(type[0]);
        return out;
      }
      if (p == IPPROTO_TCP) {
        out.protocol = FilterRule::Protocol::kTcp;
      } else if (p == IPPROTO_UDP) {
        out.protocol = FilterRule::Protocol::kUdp;
      } else {
        return std::nullopt;
      }
      if (PayloadAt(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2)) {
        std::string port;
        if (CmpValue(NFT_CMP_EQ, &port)) {
          if (port.size() != 2) return std::nullopt;
          uint16_t p16;
          std::memcpy(&p16, port.data(), 2);
          out.ports = FilterPortRange{ntohs(p16), ntohs(p16)};
        } else if (Is("range")) {
          uint32_t l1 = 0, l2 = 0;
          const void* from = nftnl_expr_get(exprs_[i_], NFTNL_EXPR_RANGE_FROM_DATA, &l1);
          const void* to = nftnl_expr_get(exprs_[i_], NFTNL_EXPR_RANGE_TO_DATA, &l2);
          if (from == nullptr || to == nullptr || l1 != 2 || l2 != 2 ||
              nftnl_expr_get_u32(exprs_[i_], NFTNL_EXPR_RANGE_OP) != NFT_RANGE_EQ) {
            return std::nullopt;
          }
          uint16_t a, b;
          std::memcpy(&a, from, 2);
          std::memcpy(&b, to, 2);
          out.ports = FilterPortRange{ntohs(a), ntohs(b)};
          ++i_;
        } else {
          return std::nullopt;
        }
      }
    }
    if (out.source_set.empty() && Saddr(v6)) {
      if (!LookupSet(true, &out.source_map) || i_ != exprs_.size()) return std::nullopt;
      return out;
    }
    if (!AcceptEnd()) return std::nullopt;
    return out;
  }

 private:
  // After nfproto (and, for IPv6, the fe80::/10 source match): a DHCP reply
  // (udp sport/dport pair) or, IPv6 only, one ICMPv6 type. IPv4 probes
  // without consuming anything unless it matches.
  std::optional<FilterRule> Addressing(bool v6, FilterRule out) {
    const size_t start = i_;
    auto fail = [&]() -> std::optional<FilterRule> {
      i_ = start;
      return std::nullopt;
    };
    if (!Meta(NFT_META_L4PROTO)) return fail();
    std::string proto;
    if (!CmpValue(NFT_CMP_EQ, &proto) || proto.size() != 1) return fail();
    const uint8_t p = static_cast<uint8_t>(proto[0]);
    if (v6 && p == IPPROTO_ICMPV6) {
      std::string type;
      if (!PayloadAt(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1) || !CmpValue(NFT_CMP_EQ, &type) ||
          type.size() != 1 || !AcceptEnd()) {
        return fail();
      }
      out.kind = FilterRule::Kind::kIcmpV6LinkLocal;
      out.ipv6 = false;
      out.icmp_type = static_cast<uint8_t>(type[0]);
      return out;
    }
    if (p != IPPROTO_UDP) return fail();
    const uint16_t sport = PortOrder(v6 ? 547 : 67), dport = PortOrder(v6 ? 546 : 68);
    if (!PayloadAt(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2) ||
        !CmpEq(NFT_CMP_EQ, std::string(reinterpret_cast<const char*>(&sport), 2)) ||
        !PayloadAt(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) ||
        !CmpEq(NFT_CMP_EQ, std::string(reinterpret_cast<const char*>(&dport), 2)) ||
        !AcceptEnd()) {
      return fail();
    }
    out.kind = FilterRule::Kind::kDhcpReply;
    out.ipv6 = v6;
    return out;
  }
  // ip6 saddr fe80::/10, as BuildRule writes it.
  bool LinkLocalSource() {
    const size_t start = i_;
    if (PayloadAt(NFT_PAYLOAD_NETWORK_HEADER, 8, 2) && Is("bitwise")) {
      uint32_t ml = 0, xl = 0;
      const void* mask = nftnl_expr_get(exprs_[i_], NFTNL_EXPR_BITWISE_MASK, &ml);
      const void* x = nftnl_expr_get(exprs_[i_], NFTNL_EXPR_BITWISE_XOR, &xl);
      if (mask != nullptr && x != nullptr && ml == 2 && xl == 2 &&
          std::memcmp(mask, kLinkLocalMask, 2) == 0 && std::memcmp(x, kZero2, 2) == 0) {
        ++i_;
        if (CmpEq(NFT_CMP_EQ, std::string(reinterpret_cast<const char*>(kLinkLocalPrefix), 2))) {
          return true;
        }
      }
    }
    i_ = start;
    return false;
  }
  bool Is(const char* name) const {
    return i_ < exprs_.size() &&
           std::strcmp(nftnl_expr_get_str(exprs_[i_], NFTNL_EXPR_NAME), name) == 0;
  }
  bool Meta(uint32_t key) {
    if (!Is("meta") || nftnl_expr_get_u32(exprs_[i_], NFTNL_EXPR_META_KEY) != key) return false;
    ++i_;
    return true;
  }
  bool CmpValue(uint32_t op, std::string* value) {
    if (!Is("cmp") || nftnl_expr_get_u32(exprs_[i_], NFTNL_EXPR_CMP_OP) != op) return false;
    uint32_t len = 0;
    const void* d = nftnl_expr_get(exprs_[i_], NFTNL_EXPR_CMP_DATA, &len);
    if (d == nullptr) return false;
    value->assign(static_cast<const char*>(d), len);
    ++i_;
    return true;
  }
  bool CmpEq(uint32_t op, const std::string& want) {
    std::string v;
    return CmpValue(op, &v) && v == want;
  }
  bool PayloadAt(uint32_t base, uint32_t offset, uint32_t len) {
    if (!Is("payload")) return false;
    nftnl_expr* e = exprs_[i_];
    if (nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE) != base ||
        nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET) != offset ||
        nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN) != len) {
      return false;
    }
    ++i_;
    return true;
  }
  bool Saddr(bool v6) {
    return v6 ? PayloadAt(NFT_PAYLOAD_NETWORK_HEADER, 8, 16)
              : PayloadAt(NFT_PAYLOAD_NETWORK_HEADER, 12, 4);
  }
  bool LookupSet(bool verdict_map, std::string* name) {
    if (!Is("lookup")) return false;
    nftnl_expr* e = exprs_[i_];
    const bool has_dreg = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG);
    if (has_dreg != verdict_map) return false;
    if (verdict_map && nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG) != NFT_REG_VERDICT) {
      return false;
    }
    if (nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS) &&
        nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) != 0) {
      return false;  // inverted lookup
    }
    *name = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
    ++i_;
    return true;
  }
  bool AcceptEnd() {
    if (!Is("immediate") || i_ + 1 != exprs_.size()) return false;
    nftnl_expr* e = exprs_[i_];
    return nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG) == NFT_REG_VERDICT &&
           nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT) == NF_ACCEPT;
  }

  std::vector<nftnl_expr*> exprs_;
  size_t i_ = 0;
};

std::string RuleComment(nftnl_rule* r) {
  if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA)) return "";
  uint32_t len = 0;
  const auto* p = static_cast<const uint8_t*>(nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len));
  // TLVs: type (1 byte), length (1 byte), value.
  for (uint32_t i = 0; p != nullptr && i + 2 <= len;) {
    const uint8_t type = p[i], l = p[i + 1];
    if (i + 2 + l > len) break;
    if (type == kUdataRuleComment && l > 0) {
      return std::string(reinterpret_cast<const char*>(p + i + 2), strnlen(reinterpret_cast<const char*>(p + i + 2), l));
    }
    i += 2u + l;
  }
  return "";
}

}  // namespace

FilterRule ReadRule(nftnl_rule* r) {
  std::optional<FilterRule> parsed = RuleReader(r).Parse();
  FilterRule out;
  if (parsed.has_value()) {
    out = *parsed;
  } else {
    char text[4096];
    nftnl_rule_unset(r, NFTNL_RULE_HANDLE);
    nftnl_rule_snprintf(text, sizeof(text), r, NFTNL_OUTPUT_DEFAULT, 0);
    out.kind = FilterRule::Kind::kForeign;
    out.source_set = text;
  }
  out.comment = RuleComment(r);
  return out;
}

}  // namespace nodeward::platform::nft
