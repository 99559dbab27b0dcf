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
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace nodeward::platform {
namespace {

// nftables' own values (include/datatype.h, include/rule.h of nftables).
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeIpv6Addr = 8;
constexpr uint8_t kUdataRuleComment = 0;
// ct state bits as nftables encodes them.
constexpr uint32_t kCtEstablished = 2;
constexpr uint32_t kCtRelated = 4;
// Intervals per NEWSETELEM message: well under the u16 attribute limit.
constexpr size_t kElemsPerMessage = 700;

struct TableFree { void operator()(nftnl_table* p) const { nftnl_table_free(p); } };
struct ChainFree { void operator()(nftnl_chain* p) const { nftnl_chain_free(p); } };
struct SetFree { void operator()(nftnl_set* p) const { nftnl_set_free(p); } };
struct RuleFree { void operator()(nftnl_rule* p) const { nftnl_rule_free(p); } };
struct SocketClose { void operator()(mnl_socket* p) const { mnl_socket_close(p); } };

// A batch of netlink messages, built one message at a time into its own
// scratch buffer and appended, so the batch can grow to any size.
class Batch {
 public:
  Batch() { Begin(); }
  uint32_t Add(uint16_t type, uint16_t flags, const std::function<void(nlmsghdr*)>& build) {
    std::vector<char> buf(256 * 1024);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, NFPROTO_INET, flags | NLM_F_ACK, seq_);
    build(nlh);
    data_.append(buf.data(), nlh->nlmsg_len);
    ++messages_;
    return seq_++;
  }
  const std::string& Finish() {
    std::vector<char> buf(64);
    nftnl_batch_end(buf.data(), seq_++);
    data_.append(buf.data(), reinterpret_cast<nlmsghdr*>(buf.data())->nlmsg_len);
    return data_;
  }
  size_t messages() const { return messages_; }

 private:
  void Begin() {
    std::vector<char> buf(64);
    nftnl_batch_begin(buf.data(), seq_++);
    data_.append(buf.data(), reinterpret_cast<nlmsghdr*>(buf.data())->nlmsg_len);
  }
  std::string data_;
  uint32_t seq_ = 1;
  size_t messages_ = 0;
};

absl::StatusOr<std::unique_ptr<mnl_socket, SocketClose>> OpenSocket(size_t send_bytes) {
  std::unique_ptr<mnl_socket, SocketClose> nl(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!nl) return absl::ErrnoToStatus(errno, "open netfilter netlink socket");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::ErrnoToStatus(errno, "bind netfilter netlink socket");
  }
  int fd = mnl_socket_get_fd(nl.get());
  // Big batches and one ack per message: raise both buffers (as nft does),
  // and ask for acks without the request echoed back.
  int snd = static_cast<int>(std::max<size_t>(send_bytes + 65536, 212992));
  int rcv = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  }
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return nl;
}

// Sends the batch and reads one ack (or error) per message. The kernel
// applies all of the batch or none of it.
absl::Status Commit(Batch& batch, absl::string_view what) {
  const std::string& data = batch.Finish();
  auto nl = OpenSocket(data.size());
  if (!nl.ok()) return nl.status();
  if (mnl_socket_sendto(nl->get(), data.data(), data.size()) < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(what, ": send netlink batch"));
  }
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  size_t answered = 0;
  int first_error = 0;
  while (answered < batch.messages()) {
    int n = static_cast<int>(mnl_socket_recvfrom(nl->get(), buf.data(), buf.size()));
    if (n < 0) {
      // ENOBUFS: acks were dropped; the transaction may still have landed.
      return absl::ErrnoToStatus(errno, absl::StrCat(what, ": read netlink acks (outcome "
                                                           "unknown: re-read the kernel state)"));
    }
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, n);
         nlh = mnl_nlmsg_next(nlh, &n)) {
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error != 0 && first_error == 0) first_error = -err->error;
        ++answered;
      }
    }
    if (first_error != 0) break;
  }
  if (first_error != 0) {
    return absl::ErrnoToStatus(first_error,
                               absl::StrCat(what, ": the kernel refused the transaction"));
  }
  return absl::OkStatus();
}

void AddExpr(nftnl_rule* r, nftnl_expr* e) { nftnl_rule_add_expr(r, e); }

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

// Address bytes in network order.
std::string Key(absl::uint128 v, bool ipv6) {
  const int n = ipv6 ? 16 : 4;
  std::string out(static_cast<size_t>(n), '\0');
  for (int i = 0; i < n; ++i) {
    out[static_cast<size_t>(n - 1 - i)] = static_cast<char>(static_cast<uint8_t>(v >> (8 * i)));
  }
  return out;
}

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 31) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

}  // namespace

absl::Status NftPacketFilter::ReplaceTable(const FilterRuleset& ruleset) {
  // Check everything before anything is built.
  std::vector<std::string> set_names;
  for (const FilterSet& s : ruleset.sets) {
    if (!ValidName(s.name)) {
      return absl::InvalidArgumentError(absl::StrCat("packet filter: bad set name '", s.name, "'"));
    }
    set_names.push_back(s.name);
  }
  for (const FilterRule& r : ruleset.rules) {
    if (!r.source_set.empty() &&
        std::find(set_names.begin(), set_names.end(), r.source_set) == set_names.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("packet filter: rule names unknown set '", r.source_set, "'"));
    }
    if (!r.ports.empty() && r.protocol == FilterRule::Protocol::kAny) {
      return absl::InvalidArgumentError("packet filter: ports without a protocol");
    }
  }

  Batch b;
  const char* table = table_.c_str();
  std::unique_ptr<nftnl_table, TableFree> t(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table);
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  // "add table; delete table; add table ...": whatever was there (ours,
  // possibly edited by someone else) is replaced in the same transaction.
  auto table_payload = [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, t.get()); };
  b.Add(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_payload);
  b.Add(NFT_MSG_DELTABLE, 0, table_payload);
  b.Add(NFT_MSG_NEWTABLE, NLM_F_CREATE, table_payload);

  std::unique_ptr<nftnl_chain, ChainFree> c(nftnl_chain_alloc());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table);
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, "input");
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_IN);
  nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, 0);
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_DROP);
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
  b.Add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [&](nlmsghdr* n) { nftnl_chain_nlmsg_build_payload(n, c.get()); });

  uint32_t set_id = 1;
  std::vector<std::pair<std::string, uint32_t>> ids;
  for (const FilterSet& s : ruleset.sets) {
    const uint32_t id = set_id++;
    ids.emplace_back(s.name, id);
    std::unique_ptr<nftnl_set, SetFree> set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table);
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, s.name.c_str());
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, s.ipv6 ? kTypeIpv6Addr : kTypeIpv4Addr);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, s.ipv6 ? 16 : 4);
    nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
    nftnl_set_set_u32(set.get(), NFTNL_SET_ID, id);
    b.Add(NFT_MSG_NEWSET, NLM_F_CREATE, [&](nlmsghdr* n) { nftnl_set_nlmsg_build_payload(n, set.get()); });
    const absl::uint128 max = s.ipv6 ? ~absl::uint128(0) : absl::uint128(0xffffffffu);
    for (size_t i = 0; i < s.intervals.size(); i += kElemsPerMessage) {
      std::unique_ptr<nftnl_set, SetFree> elems(nftnl_set_alloc());
      nftnl_set_set_str(elems.get(), NFTNL_SET_TABLE, table);
      nftnl_set_set_str(elems.get(), NFTNL_SET_NAME, s.name.c_str());
      nftnl_set_set_u32(elems.get(), NFTNL_SET_ID, id);
      for (size_t j = i; j < std::min(s.intervals.size(), i + kElemsPerMessage); ++j) {
        const FilterInterval& iv = s.intervals[j];
        // An interval is [start, end+1): the end element carries INTERVAL_END;
        // a range that reaches the top of the address space has none.
        const std::string start = Key(iv.first, s.ipv6);
        auto* e1 = nftnl_set_elem_alloc();
        nftnl_set_elem_set(e1, NFTNL_SET_ELEM_KEY, start.data(), static_cast<uint32_t>(start.size()));
        nftnl_set_elem_add(elems.get(), e1);
        if (iv.last != max) {
          const std::string end = Key(iv.last + 1, s.ipv6);
          auto* e2 = nftnl_set_elem_alloc();
          nftnl_set_elem_set(e2, NFTNL_SET_ELEM_KEY, end.data(), static_cast<uint32_t>(end.size()));
          nftnl_set_elem_set_u32(e2, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
          nftnl_set_elem_add(elems.get(), e2);
        }
      }
      b.Add(NFT_MSG_NEWSETELEM, NLM_F_CREATE,
            [&](nlmsghdr* n) { nftnl_set_elems_nlmsg_build_payload(n, elems.get()); });
    }
  }

  for (const FilterRule& fr : ruleset.rules) {
    // A rule with several port ranges becomes one kernel rule per range.
    std::vector<const FilterPortRange*> ranges;
    for (const auto& p : fr.ports) ranges.push_back(&p);
    if (ranges.empty()) ranges.push_back(nullptr);
    std::vector<uint8_t> icmp = fr.icmp_types;
    const size_t variants = (fr.kind == FilterRule::Kind::kIcmp ||
                             fr.kind == FilterRule::Kind::kIcmpV6)
                                ? icmp.size()
                                : ranges.size();
    for (size_t v = 0; v < variants; ++v) {
      std::unique_ptr<nftnl_rule, RuleFree> r(nftnl_rule_alloc());
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table);
      nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, "input");
      nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
      switch (fr.kind) {
        case FilterRule::Kind::kLoopback: {
          char lo[IFNAMSIZ] = "lo";
          AddExpr(r.get(), Meta(NFT_META_IIFNAME));
          AddExpr(r.get(), Cmp(NFT_CMP_EQ, lo, IFNAMSIZ));
          break;
        }
        case FilterRule::Kind::kEstablished: {
          auto* ct = nftnl_expr_alloc("ct");
          nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
          nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
          AddExpr(r.get(), ct);
          uint32_t mask = kCtEstablished | kCtRelated, zero = 0;
          auto* bw = nftnl_expr_alloc("bitwise");
          nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
          nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
          nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_LEN, 4);
          nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
          nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
          AddExpr(r.get(), bw);
          AddExpr(r.get(), Cmp(NFT_CMP_NEQ, &zero, 4));
          break;
        }
        case FilterRule::Kind::kIcmp:
        case FilterRule::Kind::kIcmpV6: {
          const bool v6 = fr.kind == FilterRule::Kind::kIcmpV6;
          uint8_t family = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
          uint8_t proto = v6 ? static_cast<uint8_t>(IPPROTO_ICMPV6)
                             : static_cast<uint8_t>(IPPROTO_ICMP);
          AddExpr(r.get(), Meta(NFT_META_NFPROTO));
          AddExpr(r.get(), Cmp(NFT_CMP_EQ, &family, 1));
          AddExpr(r.get(), Meta(NFT_META_L4PROTO));
          AddExpr(r.get(), Cmp(NFT_CMP_EQ, &proto, 1));
          AddExpr(r.get(), Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1));
          AddExpr(r.get(), Cmp(NFT_CMP_EQ, &icmp[v], 1));
          break;
        }
        case FilterRule::Kind::kSource: {
          uint8_t family = fr.ipv6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
          AddExpr(r.get(), Meta(NFT_META_NFPROTO));
          AddExpr(r.get(), Cmp(NFT_CMP_EQ, &family, 1));
          if (!fr.source_set.empty()) {
            AddExpr(r.get(), fr.ipv6 ? Payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16)
                                     : Payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4));
            auto* lookup = nftnl_expr_alloc("lookup");
            nftnl_expr_set_u32(lookup, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
            nftnl_expr_set_str(lookup, NFTNL_EXPR_LOOKUP_SET, fr.source_set.c_str());
            for (const auto& [name, id] : ids) {
              if (name == fr.source_set) nftnl_expr_set_u32(lookup, NFTNL_EXPR_LOOKUP_SET_ID, id);
            }
            AddExpr(r.get(), lookup);
          }
          if (fr.protocol != FilterRule::Protocol::kAny) {
            uint8_t proto = fr.protocol == FilterRule::Protocol::kTcp
                                ? static_cast<uint8_t>(IPPROTO_TCP)
                                : static_cast<uint8_t>(IPPROTO_UDP);
            AddExpr(r.get(), Meta(NFT_META_L4PROTO));
            AddExpr(r.get(), Cmp(NFT_CMP_EQ, &proto, 1));
          }
          if (const FilterPortRange* p = ranges[v]) {
            AddExpr(r.get(), Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2));
            uint16_t from = htons(p->first), to = htons(p->last);
            if (p->first == p->last) {
              AddExpr(r.get(), Cmp(NFT_CMP_EQ, &from, 2));
            } else {
              auto* range = nftnl_expr_alloc("range");
              nftnl_expr_set_u32(range, NFTNL_EXPR_RANGE_SREG, NFT_REG_1);
              nftnl_expr_set_u32(range, NFTNL_EXPR_RANGE_OP, NFT_RANGE_EQ);
              nftnl_expr_set(range, NFTNL_EXPR_RANGE_FROM_DATA, &from, 2);
              nftnl_expr_set(range, NFTNL_EXPR_RANGE_TO_DATA, &to, 2);
              AddExpr(r.get(), range);
            }
          }
          break;
        }
      }
      AddExpr(r.get(), Accept());
      if (!fr.comment.empty()) {
        std::unique_ptr<nftnl_udata_buf, decltype(&nftnl_udata_buf_free)> ud(
            nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN), nftnl_udata_buf_free);
        nftnl_udata_put_strz(ud.get(), kUdataRuleComment, fr.comment.substr(0, 120).c_str());
        nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud.get()),
                            nftnl_udata_buf_len(ud.get()));
      }
      b.Add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
            [&](nlmsghdr* n) { nftnl_rule_nlmsg_build_payload(n, r.get()); });
    }
  }
  return Commit(b, absl::StrCat("replace table inet ", table_));
}

absl::Status NftPacketFilter::DeleteTable() {
  Batch b;
  std::unique_ptr<nftnl_table, TableFree> t(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table_.c_str());
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  auto payload = [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, t.get()); };
  b.Add(NFT_MSG_NEWTABLE, NLM_F_CREATE, payload);  // so that "absent" is fine
  b.Add(NFT_MSG_DELTABLE, 0, payload);
  return Commit(b, absl::StrCat("delete table inet ", table_));
}

absl::StatusOr<bool> NftPacketFilter::TableExists() {
  auto nl = OpenSocket(0);
  if (!nl.ok()) return nl.status();
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, 1);
  std::unique_ptr<nftnl_table, TableFree> t(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table_.c_str());
  nftnl_table_nlmsg_build_payload(nlh, t.get());
  if (mnl_socket_sendto(nl->get(), nlh, nlh->nlmsg_len) < 0) {
    return absl::ErrnoToStatus(errno, "query nftables table");
  }
  const uint32_t portid = mnl_socket_get_portid(nl->get());
  while (true) {
    int n = static_cast<int>(mnl_socket_recvfrom(nl->get(), buf.data(), buf.size()));
    if (n < 0) return absl::ErrnoToStatus(errno, "read nftables table");
    int ret = mnl_cb_run(buf.data(), n, 1, portid, nullptr, nullptr);
    if (ret < 0) {
      if (errno == ENOENT) return false;
      return absl::ErrnoToStatus(errno, "query nftables table");
    }
    if (ret == MNL_CB_STOP) return true;
  }
}

}  // namespace nodeward::platform
