// NftPacketFilter::ReadLocked: the table read back into the model, retried
// until one generation id holds from start to end.
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

}  // namespace

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


}  // namespace nodeward::platform
