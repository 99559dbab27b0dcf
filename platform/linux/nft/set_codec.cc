// Interval set elements <-> netlink (NEWSETELEM), without libnftnl objects
// on the read side.
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

}  // namespace nodeward::platform::nft
