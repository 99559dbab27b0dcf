// NftPacketFilter::CommitLocked: one FilterChange as one generation-guarded
// netlink batch, after CheckChange refused anything it could not write.
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
#include "platform/linux/nft/codec.h"
#include "platform/linux/nft/netlink.h"

namespace nodeward::platform {
namespace {

using namespace nft;  // netlink plumbing, the codec and its constants


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


}  // namespace nodeward::platform
