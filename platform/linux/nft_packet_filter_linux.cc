#include "platform/linux/nft_packet_filter_linux.h"

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
#include "platform/linux/nft/foreign_drops.h"
#include "platform/linux/nft/netlink.h"

namespace nodeward::platform {
namespace {

// nftables' own values (include/datatype.h, include/rule.h of nftables).
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeIpv6Addr = 8;
constexpr uint8_t kUdataRuleComment = 0;
// ct state bits as nftables encodes them.
constexpr uint32_t kCtEstablished = 2;
constexpr uint32_t kCtRelated = 4;
// Intervals per NEWSETELEM message: well under the u16 attribute limit
// (~1,500 IPv4 / ~900 IPv6 intervals, netfilter-facts.md).
constexpr size_t kElemsPerMessage = 700;
constexpr char kInput[] = "input";

using nft::Batch;
using nft::ChainFree;
using nft::DumpRules;
using nft::ForEachAttr;
using nft::ForEachNested;
using nft::GetGenid;
using nft::OpenSocket;
using nft::RaiseSendBuffer;
using nft::Request;
using nft::RuleFree;
using nft::Send;
using nft::SetFree;
using nft::Socket;
using nft::TableFree;

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

// Address bytes in network order, and back.
std::string Key(absl::uint128 v, bool ipv6) {
  const int n = ipv6 ? 16 : 4;
  std::string out(static_cast<size_t>(n), '\0');
  for (int i = 0; i < n; ++i) {
    out[static_cast<size_t>(n - 1 - i)] = static_cast<char>(static_cast<uint8_t>(v >> (8 * i)));
  }
  return out;
}
absl::uint128 FromKey(const uint8_t* p, size_t n) {
  absl::uint128 v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}
absl::uint128 MaxKey(bool ipv6) { return ipv6 ? ~absl::uint128(0) : absl::uint128(0xffffffffu); }

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

uint16_t PortOrder(uint16_t p) { return htons(p); }

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

struct RawElem {
  absl::uint128 key;
  bool end;
  std::string chain;  // maps: jump target
};

// Parses NEWSETELEM replies without libnftnl objects (a 1M-element set
// would otherwise cost hundreds of bytes per element).
void ParseElems(const nlmsghdr* m, size_t keylen, std::vector<RawElem>* out) {
  ForEachAttr(m, sizeof(nfgenmsg), [&](const nlattr* a) {
    if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS) return;
    ForEachNested(a, [&](const nlattr* el) {
      RawElem e{0, false, {}};
      bool has_key = false;
      ForEachNested(el, [&](const nlattr* f) {
        switch (mnl_attr_get_type(f)) {
          case NFTA_SET_ELEM_KEY:
            ForEachNested(f, [&](const nlattr* v) {
              if (mnl_attr_get_type(v) == NFTA_DATA_VALUE && mnl_attr_get_payload_len(v) == keylen) {
                e.key = FromKey(static_cast<const uint8_t*>(mnl_attr_get_payload(v)), keylen);
                has_key = true;
              }
            });
            break;
          case NFTA_SET_ELEM_FLAGS:
            e.end = (ntohl(mnl_attr_get_u32(f)) & NFT_SET_ELEM_INTERVAL_END) != 0;
            break;
          case NFTA_SET_ELEM_DATA:
            ForEachNested(f, [&](const nlattr* d) {
              if (mnl_attr_get_type(d) != NFTA_DATA_VERDICT) return;
              ForEachNested(d, [&](const nlattr* v) {
                if (mnl_attr_get_type(v) == NFTA_VERDICT_CHAIN) e.chain = mnl_attr_get_str(v);
              });
            });
            break;
          default:
            break;
        }
      });
      if (has_key) out->push_back(std::move(e));
    });
  });
}

// Elements back to intervals: a start runs to the next element (an end
// marker closes it at key-1); the last start without an end runs to the top
// of the address space. Stray end markers match nothing and are skipped.
void ToIntervals(std::vector<RawElem> elems, bool ipv6, FilterSet* s) {
  std::sort(elems.begin(), elems.end(), [](const RawElem& a, const RawElem& b) {
    if (a.key != b.key) return a.key < b.key;
    return a.end && !b.end;  // an end at K closes before a start at K opens
  });
  for (size_t i = 0; i < elems.size(); ++i) {
    if (elems[i].end) continue;
    FilterInterval iv{elems[i].key, MaxKey(ipv6)};
    if (i + 1 < elems.size()) iv.last = elems[i + 1].key - 1;
    s->intervals.push_back(iv);
    if (!elems[i].chain.empty()) s->targets.push_back(elems[i].chain);
  }
}

void AddElements(Batch& b, uint16_t type, const std::string& table, const std::string& set,
                 uint32_t set_id, bool ipv6, const std::vector<FilterInterval>& intervals,
                 const std::vector<std::string>& targets) {
  const absl::uint128 max = MaxKey(ipv6);
  for (size_t i = 0; i < intervals.size(); i += kElemsPerMessage) {
    std::unique_ptr<nftnl_set, SetFree> elems(nftnl_set_alloc());
    nftnl_set_set_str(elems.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(elems.get(), NFTNL_SET_NAME, set.c_str());
    if (set_id != 0) nftnl_set_set_u32(elems.get(), NFTNL_SET_ID, set_id);
    for (size_t j = i; j < std::min(intervals.size(), i + kElemsPerMessage); ++j) {
      const FilterInterval& iv = intervals[j];
      // An interval is [start, end+1): the end element carries INTERVAL_END;
      // a range that reaches the top of the address space has none.
      const std::string start = Key(iv.first, ipv6);
      auto* e1 = nftnl_set_elem_alloc();
      nftnl_set_elem_set(e1, NFTNL_SET_ELEM_KEY, start.data(), static_cast<uint32_t>(start.size()));
      if (!targets.empty() && type == NFT_MSG_NEWSETELEM) {
        nftnl_set_elem_set_u32(e1, NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(NFT_JUMP));
        nftnl_set_elem_set_str(e1, NFTNL_SET_ELEM_CHAIN, targets[j].c_str());
      }
      nftnl_set_elem_add(elems.get(), e1);
      if (iv.last != max) {
        const std::string end = Key(iv.last + 1, ipv6);
        auto* e2 = nftnl_set_elem_alloc();
        nftnl_set_elem_set(e2, NFTNL_SET_ELEM_KEY, end.data(), static_cast<uint32_t>(end.size()));
        nftnl_set_elem_set_u32(e2, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        nftnl_set_elem_add(elems.get(), e2);
      }
    }
    b.Add(type, type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0,
          [&](nlmsghdr* n) { nftnl_set_elems_nlmsg_build_payload(n, elems.get()); });
  }
}

absl::Status CheckChange(const FilterChange& c) {
  std::set<std::string> sets;
  for (const FilterSet* sp : c.AllAddSets()) {
    const FilterSet& s = *sp;
    if (!ValidName(s.name)) {
      return absl::InvalidArgumentError(absl::StrCat("packet filter: bad set name '", s.name, "'"));
    }
    if (s.is_map() && s.targets.size() != s.intervals.size()) {
      return absl::InvalidArgumentError(absl::StrCat("packet filter: map ", s.name, " is ragged"));
    }
  }
  auto check_rules = [](const std::vector<FilterRule>& rules) -> absl::Status {
    for (const FilterRule& r : rules) {
      if (r.kind == FilterRule::Kind::kForeign) {
        return absl::InvalidArgumentError("packet filter: cannot write a foreign rule");
      }
      if (r.ports.has_value() && r.protocol == FilterRule::Protocol::kAny) {
        return absl::InvalidArgumentError("packet filter: ports without a protocol");
      }
      if (!r.source_set.empty() && !r.source_map.empty()) {
        return absl::InvalidArgumentError("packet filter: rule with both a set and a map");
      }
    }
    return absl::OkStatus();
  };
  if (c.base_rules.has_value()) {
    if (absl::Status s = check_rules(*c.base_rules); !s.ok()) return s;
  }
  for (const auto* v : {&c.add_chains, &c.rewrite_chains}) {
    for (const FilterChain& ch : *v) {
      if (!ValidName(ch.name) || ch.name == kInput) {
        return absl::InvalidArgumentError(
            absl::StrCat("packet filter: bad chain name '", ch.name, "'"));
      }
      if (absl::Status s = check_rules(ch.rules); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

NftPacketFilter::~NftPacketFilter() {
  absl::MutexLock l(&mu_);
  Drop();
}

void NftPacketFilter::Drop() {
  if (conn_ != nullptr) mnl_socket_close(conn_);
  conn_ = nullptr;
  conn_netns_ = 0;
  conn_sndbuf_ = 0;
}

absl::StatusOr<mnl_socket*> NftPacketFilter::Conn(size_t send_bytes) {
  struct stat ns{};
  if (stat("/proc/thread-self/ns/net", &ns) != 0) {
    return absl::ErrnoToStatus(errno, "netfilter socket: read this thread's network namespace");
  }
  if (conn_ != nullptr && conn_netns_ != ns.st_ino) Drop();
  if (conn_ == nullptr) {
    absl::StatusOr<Socket> nl = OpenSocket(0);
    if (!nl.ok()) return nl.status();
    conn_ = nl->release();
    conn_netns_ = ns.st_ino;
    conn_sndbuf_ = 212992;
  }
  RaiseSendBuffer(conn_, send_bytes, &conn_sndbuf_);
  return conn_;
}

absl::StatusOr<KernelTable> NftPacketFilter::Read() {
  absl::MutexLock l(&mu_);
  absl::StatusOr<KernelTable> t = ReadLocked();
  if (!t.ok()) Drop();  // replies of an interrupted dump may still be queued
  return t;
}

absl::StatusOr<uint32_t> NftPacketFilter::Commit(const FilterChange& change, uint32_t genid) {
  absl::MutexLock l(&mu_);
  absl::StatusOr<uint32_t> g = CommitLocked(change, genid);
  if (!g.ok()) Drop();  // acks after a refused message may still be queued
  return g;
}

absl::Status NftPacketFilter::DeleteTable() {
  absl::MutexLock l(&mu_);
  absl::Status s = DeleteTableLocked();
  if (!s.ok()) Drop();
  return s;
}

absl::StatusOr<std::vector<std::string>> NftPacketFilter::ForeignDrops() {
  absl::MutexLock l(&mu_);
  absl::StatusOr<std::vector<std::string>> d = ForeignDropsLocked();
  if (!d.ok()) Drop();
  return d;
}

absl::StatusOr<KernelTable> NftPacketFilter::ReadLocked() {
  absl::StatusOr<mnl_socket*> nl = Conn(0);
  if (!nl.ok()) return nl.status();
  for (int attempt = 0;; ++attempt) {
    KernelTable t;
    absl::StatusOr<uint32_t> before = GetGenid(*nl);
    if (!before.ok()) return before.status();
    t.genid = *before;
    absl::Status s = [&]() -> absl::Status {
      std::unique_ptr<nftnl_table, TableFree> tab(nftnl_table_alloc());
      nftnl_table_set_str(tab.get(), NFTNL_TABLE_NAME, table_.c_str());
      uint32_t flags = 0;
      absl::Status got = Request(
          *nl, NFT_MSG_GETTABLE, NLM_F_ACK,
          [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, tab.get()); },
          [&](const nlmsghdr* m) {
            std::unique_ptr<nftnl_table, TableFree> r(nftnl_table_alloc());
            if (nftnl_table_nlmsg_parse(m, r.get()) >= 0 &&
                nftnl_table_is_set(r.get(), NFTNL_TABLE_FLAGS)) {
              flags = nftnl_table_get_u32(r.get(), NFTNL_TABLE_FLAGS);
            }
          },
          "read table");
      if (absl::IsNotFound(got)) return absl::OkStatus();  // exists = false
      if (!got.ok()) return got;
      t.exists = true;
      // The agent's table never has a flag: `dormant` switches all of its
      // filtering off. Any flag is drift that only a replace repairs.
      t.ruleset.table_flags = flags;
      t.structure_ok = flags == 0;
      bool have_input = false;
      // Chains.
      absl::Status st = Request(
          *nl, NFT_MSG_GETCHAIN, NLM_F_DUMP, nullptr,
          [&](const nlmsghdr* m) {
            std::unique_ptr<nftnl_chain, ChainFree> c(nftnl_chain_alloc());
            if (nftnl_chain_nlmsg_parse(m, c.get()) < 0) return;
            if (nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY) != NFPROTO_INET ||
                table_ != nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) {
              return;
            }
            const std::string name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
            const bool base = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM);
            if (name == kInput) {
              have_input = true;
              const char* type = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE);
              if (!base || nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM) != NF_INET_LOCAL_IN ||
                  nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO) != 0 ||
                  nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY) != NF_DROP ||
                  type == nullptr || std::strcmp(type, "filter") != 0) {
                t.structure_ok = false;
              }
            } else if (base) {
              t.structure_ok = false;  // someone else's base chain in our table
            } else {
              t.ruleset.chains.push_back(FilterChain{name, {}});
            }
          },
          "read chains");
      if (!st.ok()) return st;
      if (!have_input) t.structure_ok = false;
      // Rules of the table, in chain order.
      st = DumpRules(*nl, table_, "", NFPROTO_INET, [&](nftnl_rule* r) {
        const std::string chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
        FilterRule fr = ReadRule(r);
        if (chain == kInput) {
          t.ruleset.rules.push_back(std::move(fr));
          return;
        }
        for (FilterChain& c : t.ruleset.chains) {
          if (c.name == chain) c.rules.push_back(fr);
        }
      });
      if (!st.ok()) return st;
      // Sets, then each set's elements.
      std::unique_ptr<nftnl_set, SetFree> sf(nftnl_set_alloc());
      nftnl_set_set_str(sf.get(), NFTNL_SET_TABLE, table_.c_str());
      struct SetInfo {
        std::string name;
        bool ipv6;
        bool map;
      };
      std::vector<SetInfo> infos;
      st = Request(
          *nl, NFT_MSG_GETSET, NLM_F_DUMP,
          [&](nlmsghdr* n) { nftnl_set_nlmsg_build_payload(n, sf.get()); },
          [&](const nlmsghdr* m) {
            std::unique_ptr<nftnl_set, SetFree> s(nftnl_set_alloc());
            if (nftnl_set_nlmsg_parse(m, s.get()) < 0) return;
            if (table_ != nftnl_set_get_str(s.get(), NFTNL_SET_TABLE)) return;
            const uint32_t flags = nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS);
            if (flags & NFT_SET_ANONYMOUS) return;  // lives and dies with its rule
            const uint32_t key = nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_TYPE);
            const bool map = (flags & NFT_SET_MAP) != 0;
            const bool ok_flags = (flags & ~static_cast<uint32_t>(NFT_SET_MAP)) == NFT_SET_INTERVAL;
            const bool ok_data =
                !map || nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_TYPE) == NFT_DATA_VERDICT;
            if ((key != kTypeIpv4Addr && key != kTypeIpv6Addr) || !ok_flags || !ok_data) {
              t.structure_ok = false;  // a set of another kind: only a replace fixes it
              return;
            }
            infos.push_back({nftnl_set_get_str(s.get(), NFTNL_SET_NAME), key == kTypeIpv6Addr, map});
          },
          "read sets");
      if (!st.ok()) return st;
      for (const SetInfo& info : infos) {
        std::vector<RawElem> elems;
        std::unique_ptr<nftnl_set, SetFree> q(nftnl_set_alloc());
        nftnl_set_set_str(q.get(), NFTNL_SET_TABLE, table_.c_str());
        nftnl_set_set_str(q.get(), NFTNL_SET_NAME, info.name.c_str());
        st = Request(
            *nl, NFT_MSG_GETSETELEM, NLM_F_DUMP,
            [&](nlmsghdr* n) { nftnl_set_elems_nlmsg_build_payload(n, q.get()); },
            [&](const nlmsghdr* m) { ParseElems(m, info.ipv6 ? 16 : 4, &elems); },
            absl::StrCat("read elements of set ", info.name));
        if (!st.ok()) return st;
        FilterSet s;
        s.name = info.name;
        s.ipv6 = info.ipv6;
        ToIntervals(std::move(elems), info.ipv6, &s);
        if (info.map && s.targets.size() != s.intervals.size()) t.structure_ok = false;
        if (!info.map && !s.targets.empty()) t.structure_ok = false;
        s.digest = SetDigest(s);
        t.ruleset.sets.push_back(std::move(s));
      }
      return absl::OkStatus();
    }();
    absl::StatusOr<uint32_t> after = GetGenid(*nl);
    if (!after.ok()) return after.status();
    const bool stable = *after == t.genid;
    if (s.ok() && stable) return t;
    if (attempt >= 4) {
      return s.ok() ? absl::AbortedError("read table: the ruleset kept changing during the read")
                    : s;
    }
    if (!s.ok() && !absl::IsAborted(s) && !absl::IsNotFound(s)) return s;
  }
}

absl::StatusOr<uint32_t> NftPacketFilter::CommitLocked(const FilterChange& change,
                                                      uint32_t genid) {
  if (absl::Status s = CheckChange(change); !s.ok()) return s;
  if (change.empty()) return genid;
  Batch b(genid);
  // About 2 x 40 bytes per interval on the wire; one allocation instead of
  // doubling (a million intervals make a 40 MB batch).
  size_t intervals = 0;
  const std::vector<const FilterSet*> new_sets = change.AllAddSets();
  for (const FilterSet* s : new_sets) intervals += s->intervals.size();
  for (const auto& e : change.add_elements) intervals += e.intervals.size();
  for (const auto& e : change.delete_elements) intervals += e.intervals.size();
  b.Reserve(64 * 1024 + intervals * 48);
  const std::string& table = table_;
  std::unique_ptr<nftnl_table, TableFree> t(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  auto table_payload = [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, t.get()); };
  if (change.replace_table) {
    // "add table; delete table; add table ...": whatever was there (ours,
    // possibly edited by someone else) is replaced in the same transaction.
    b.Add(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_payload);
    b.Add(NFT_MSG_DELTABLE, 0, table_payload);
    b.Add(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_payload);
    std::unique_ptr<nftnl_chain, ChainFree> c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, kInput);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_IN);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, 0);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_DROP);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
    b.Add(NFT_MSG_NEWCHAIN, NLM_F_CREATE,
          [&](nlmsghdr* n) { nftnl_chain_nlmsg_build_payload(n, c.get()); });
  } else if (change.create_table) {
    b.Add(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_payload);
  }

  std::map<std::string, uint32_t> set_ids;
  uint32_t next_id = 1;
  for (const FilterSet* sp : new_sets) {
    const FilterSet& s = *sp;
    const uint32_t id = next_id++;
    set_ids[s.name] = id;
    std::unique_ptr<nftnl_set, SetFree> set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, s.name.c_str());
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, s.ipv6 ? kTypeIpv6Addr : kTypeIpv4Addr);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, s.ipv6 ? 16 : 4);
    nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS,
                      NFT_SET_INTERVAL | (s.is_map() ? static_cast<uint32_t>(NFT_SET_MAP) : 0u));
    if (s.is_map()) {
      nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_TYPE, static_cast<uint32_t>(NFT_DATA_VERDICT));
      nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_LEN, 4);
    }
    nftnl_set_set_u32(set.get(), NFTNL_SET_ID, id);
    b.Add(NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL,
          [&](nlmsghdr* n) { nftnl_set_nlmsg_build_payload(n, set.get()); });
  }
  // Chains before any element that jumps to them; map elements after.
  auto add_rules = [&](const std::string& chain, const std::vector<FilterRule>& rules) {
    for (const FilterRule& fr : rules) {
      std::unique_ptr<nftnl_rule, RuleFree> r(BuildRule(table, chain, fr, set_ids));
      b.Add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
            [&](nlmsghdr* n) { nftnl_rule_nlmsg_build_payload(n, r.get()); });
    }
  };
  auto chain_msg = [&](uint16_t type, uint16_t flags, const std::string& name) {
    std::unique_ptr<nftnl_chain, ChainFree> c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str());
    b.Add(type, flags, [&](nlmsghdr* n) { nftnl_chain_nlmsg_build_payload(n, c.get()); });
  };
  auto flush_chain = [&](const std::string& name) {
    std::unique_ptr<nftnl_rule, RuleFree> r(nftnl_rule_alloc());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, name.c_str());
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    b.Add(NFT_MSG_DELRULE, 0, [&](nlmsghdr* n) { nftnl_rule_nlmsg_build_payload(n, r.get()); });
  };
  for (const FilterChain& ch : change.add_chains) {
    chain_msg(NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, ch.name);
  }
  for (const FilterSet* s : new_sets) {
    if (!s->is_map()) {
      AddElements(b, NFT_MSG_NEWSETELEM, table, s->name, set_ids[s->name], s->ipv6, s->intervals,
                  {});
    }
  }
  for (const FilterChain& ch : change.add_chains) add_rules(ch.name, ch.rules);
  for (const FilterSet* s : new_sets) {
    if (s->is_map()) {
      AddElements(b, NFT_MSG_NEWSETELEM, table, s->name, set_ids[s->name], s->ipv6, s->intervals,
                  s->targets);
    }
  }
  for (const auto& e : change.delete_elements) {
    AddElements(b, NFT_MSG_DELSETELEM, table, e.set, 0, e.ipv6, e.intervals, {});
  }
  for (const auto& e : change.add_elements) {
    AddElements(b, NFT_MSG_NEWSETELEM, table, e.set, 0, e.ipv6, e.intervals, e.targets);
  }
  if (change.base_rules.has_value()) {
    if (!change.replace_table) flush_chain(kInput);
    add_rules(kInput, *change.base_rules);
  }
  for (const FilterChain& ch : change.rewrite_chains) {
    flush_chain(ch.name);
    add_rules(ch.name, ch.rules);
  }
  auto delete_set = [&](const std::string& name) {
    std::unique_ptr<nftnl_set, SetFree> set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str());
    b.Add(NFT_MSG_DELSET, 0, [&](nlmsghdr* n) { nftnl_set_nlmsg_build_payload(n, set.get()); });
  };
  for (const std::string& name : change.delete_maps) delete_set(name);
  for (const std::string& name : change.delete_chains) {
    flush_chain(name);
    chain_msg(NFT_MSG_DELCHAIN, 0, name);
  }
  for (const std::string& name : change.delete_sets) delete_set(name);
  absl::StatusOr<mnl_socket*> nl = Conn(b.size());
  if (!nl.ok()) return nl.status();
  absl::Status s = Send(*nl, b, absl::StrCat("update table inet ", table_));
  if (!s.ok()) return s;
  return genid + 1;  // the kernel bumps the generation once per commit
}

absl::Status NftPacketFilter::DeleteTableLocked() {
  Batch b(0);
  std::unique_ptr<nftnl_table, TableFree> t(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table_.c_str());
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  auto payload = [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, t.get()); };
  b.Add(NFT_MSG_NEWTABLE, NLM_F_CREATE, payload);  // so that "absent" is fine
  b.Add(NFT_MSG_DELTABLE, 0, payload);
  absl::StatusOr<mnl_socket*> nl = Conn(0);
  if (!nl.ok()) return nl.status();
  return Send(*nl, b, absl::StrCat("delete table inet ", table_));
}

namespace {

const char* EventName(uint16_t type) {
  switch (type) {
    case NFT_MSG_NEWTABLE: return "table added";
    case NFT_MSG_DELTABLE: return "table deleted";
    case NFT_MSG_NEWCHAIN: return "chain added";
    case NFT_MSG_DELCHAIN: return "chain deleted";
    case NFT_MSG_NEWRULE: return "rule added";
    case NFT_MSG_DELRULE: return "rule deleted";
    case NFT_MSG_NEWSET: return "set added";
    case NFT_MSG_DELSET: return "set deleted";
    case NFT_MSG_NEWSETELEM: return "elements added";
    case NFT_MSG_DELSETELEM: return "elements deleted";
    default: return "object changed";
  }
}

// Listens on the nftables multicast group. Each committed transaction ends
// with a NEWGEN message (generation, committer's pid and name); the object
// messages before it say what changed.
class NftWatch final : public FilterWatch {
 public:
  NftWatch(Socket nl, std::string table) : nl_(std::move(nl)), table_(std::move(table)) {}

  absl::StatusOr<std::vector<FilterEvent>> Wait(absl::Duration timeout) override {
    std::vector<FilterEvent> out;
    pollfd p{mnl_socket_get_fd(nl_.get()), POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
    int r = poll(&p, 1, ms);
    if (r < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "wait for nftables events");
    if (r <= 0) return out;
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 16);
    while (true) {
      ssize_t n = recv(mnl_socket_get_fd(nl_.get()), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == ENOBUFS) {
          // The kernel dropped events (a big transaction): nothing says what
          // happened, so the caller re-reads.
          FilterEvent lost;
          lost.lost = true;
          lost.touched_table = true;
          out.push_back(lost);
          pending_ = FilterEvent();
          whats_.clear();
          continue;
        }
        return absl::ErrnoToStatus(errno, "read nftables events");
      }
      int len = static_cast<int>(n);
      for (auto* m = reinterpret_cast<nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len);
           m = mnl_nlmsg_next(m, &len)) {
        if (NFNL_SUBSYS_ID(m->nlmsg_type) != NFNL_SUBSYS_NFTABLES) continue;
        const uint16_t type = NFNL_MSG_TYPE(m->nlmsg_type);
        if (type == NFT_MSG_NEWGEN) {
          ForEachAttr(m, sizeof(nfgenmsg), [&](const nlattr* a) {
            switch (mnl_attr_get_type(a)) {
              case NFTA_GEN_ID:
                pending_.genid = ntohl(mnl_attr_get_u32(a));
                break;
              case NFTA_GEN_PROC_PID:
                pending_.pid = static_cast<int>(ntohl(mnl_attr_get_u32(a)));
                break;
              case NFTA_GEN_PROC_NAME:
                pending_.process = mnl_attr_get_str(a);
                break;
              default:
                break;
            }
          });
          pending_.own = pending_.pid == getpid();
          std::vector<std::string> w(whats_.begin(), whats_.end());
          pending_.what = absl::StrJoin(w, ", ");
          out.push_back(pending_);
          pending_ = FilterEvent();
          whats_.clear();
          continue;
        }
        const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(m));
        if (nfg->nfgen_family != NFPROTO_INET) continue;
        // Attribute 1 is the table name in every nftables object message.
        ForEachAttr(m, sizeof(nfgenmsg), [&](const nlattr* a) {
          if (mnl_attr_get_type(a) == 1 && mnl_attr_get_payload_len(a) > 0 &&
              table_ == mnl_attr_get_str(a)) {
            pending_.touched_table = true;
            whats_.insert(EventName(type));
          }
        });
      }
    }
    return out;
  }

 private:
  Socket nl_;
  std::string table_;
  FilterEvent pending_;
  std::set<std::string> whats_;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> NftPacketFilter::ForeignDropsLocked() {
  absl::StatusOr<mnl_socket*> nl = Conn(0);
  if (!nl.ok()) return nl.status();
  return nft::FindForeignDrops(*nl, table_);
}

absl::StatusOr<std::unique_ptr<FilterWatch>> NftPacketFilter::Watch() {
  absl::StatusOr<Socket> nl = OpenSocket(0, 1u << (NFNLGRP_NFTABLES - 1));
  if (!nl.ok()) return nl.status();
  return std::make_unique<NftWatch>(std::move(nl).value(), table_);
}

}  // namespace nodeward::platform
