#include "platform/linux/nft/foreign_drops.h"

#include <arpa/inet.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "platform/linux/nft/netlink.h"

namespace nodeward::platform::nft {
namespace {

// Whether a chain of another table can drop what the agent's table accepts:
// its drop and reject rules, and rules that jump or go to a chain that can
// (followed through jump, goto and verdict-map targets in the same table,
// depth-bounded, each chain once). fail2ban-style setups reject from a
// chain reached by a jump, never from the base chain itself.
class DropFinder {
 public:
  DropFinder(mnl_socket* nl, uint16_t family, std::string table)
      : nl_(nl), family_(family), table_(std::move(table)) {}

  // Rules in `chain` that can drop; `via` gets the chains reached that did.
  absl::StatusOr<int> Drops(const std::string& chain, int depth, std::set<std::string>* via) {
    auto known = memo_.find(chain);
    if (known != memo_.end()) return known->second;
    if (depth > kMaxDepth || !visiting_.insert(chain).second) return 0;  // a loop, or too deep
    struct RuleFacts {
      bool drop = false;
      std::vector<std::string> targets;  // jump / goto
      std::vector<std::string> maps;     // verdict maps
    };
    std::vector<RuleFacts> rules;
    absl::Status st = DumpRules(nl_, table_, chain, family_, [&](nftnl_rule* r) {
      RuleFacts f;
      nftnl_expr_iter* it = nftnl_expr_iter_create(r);
      for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it)) {
        const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
        if (std::strcmp(name, "reject") == 0) f.drop = true;
        if (std::strcmp(name, "immediate") == 0 && nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT)) {
          const int32_t v = static_cast<int32_t>(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT));
          if (v == NF_DROP) f.drop = true;
          if ((v == NFT_JUMP || v == NFT_GOTO) && nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN)) {
            f.targets.push_back(nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN));
          }
        }
        if (std::strcmp(name, "lookup") == 0 && nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG) &&
            nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG) == NFT_REG_VERDICT &&
            nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET)) {
          f.maps.push_back(nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET));
        }
      }
      nftnl_expr_iter_destroy(it);
      rules.push_back(std::move(f));
    });
    if (!st.ok() && !absl::IsNotFound(st)) return st;  // a chain gone meanwhile has none
    int drops = 0;
    for (const RuleFacts& f : rules) {
      bool can = f.drop;
      for (const std::string& t : f.targets) {
        if (can) break;
        absl::StatusOr<int> n = Drops(t, depth + 1, via);
        if (!n.ok()) return n.status();
        if (*n > 0) {
          can = true;
          via->insert(t);
        }
      }
      for (const std::string& m : f.maps) {
        if (can) break;
        absl::StatusOr<bool> d = MapDrops(m, depth + 1, via);
        if (!d.ok()) return d.status();
        if (*d) {
          can = true;
          via->insert("map " + m);
        }
      }
      if (can) ++drops;
    }
    visiting_.erase(chain);
    memo_[chain] = drops;
    return drops;
  }

 private:
  static constexpr int kMaxDepth = 16;

  // A verdict map with a drop, or a jump/goto to a chain that can drop.
  absl::StatusOr<bool> MapDrops(const std::string& set, int depth, std::set<std::string>* via) {
    std::unique_ptr<nftnl_set, SetFree> q(nftnl_set_alloc());
    nftnl_set_set_str(q.get(), NFTNL_SET_TABLE, table_.c_str());
    nftnl_set_set_str(q.get(), NFTNL_SET_NAME, set.c_str());
    std::vector<std::pair<int32_t, std::string>> verdicts;
    absl::Status st = Request(
        nl_, NFT_MSG_GETSETELEM, NLM_F_DUMP,
        [&](nlmsghdr* n) { nftnl_set_elems_nlmsg_build_payload(n, q.get()); },
        [&](const nlmsghdr* m) {
          std::unique_ptr<nftnl_set, SetFree> got(nftnl_set_alloc());
          if (nftnl_set_elems_nlmsg_parse(m, got.get()) < 0) return;
          nftnl_set_elem_foreach(
              got.get(),
              [](nftnl_set_elem* e, void* data) {
                auto* out = static_cast<std::vector<std::pair<int32_t, std::string>>*>(data);
                if (!nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT)) return 0;
                const int32_t v = static_cast<int32_t>(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT));
                const char* c = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)
                                    ? nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN)
                                    : "";
                out->emplace_back(v, c);
                return 0;
              },
              &verdicts);
        },
        absl::StrCat("read elements of map ", set), family_);
    if (!st.ok() && !absl::IsNotFound(st)) return st;
    for (const auto& [v, chain] : verdicts) {
      if (v == NF_DROP) return true;
      if ((v == NFT_JUMP || v == NFT_GOTO) && !chain.empty()) {
        absl::StatusOr<int> n = Drops(chain, depth, via);
        if (!n.ok()) return n.status();
        if (*n > 0) return true;
      }
    }
    return false;
  }

  mnl_socket* nl_;
  uint16_t family_;
  std::string table_;
  std::set<std::string> visiting_;
  std::map<std::string, int> memo_;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> FindForeignDrops(mnl_socket* nl,
                                                          const std::string& own_table) {
  struct Hooked {
    uint32_t family;
    std::string table, chain, hook;
    int32_t prio;
    bool policy_drop;
  };
  std::vector<Hooked> hooked;
  // All chains of all tables and families: base chains on the paths a
  // packet to this host takes (prerouting, input) in someone else's table.
  absl::Status st = Request(
      nl, NFT_MSG_GETCHAIN, NLM_F_DUMP, nullptr,
      [&](const nlmsghdr* m) {
        std::unique_ptr<nftnl_chain, ChainFree> ch(nftnl_chain_alloc());
        if (nftnl_chain_nlmsg_parse(m, ch.get()) < 0) return;
        const uint32_t fam = nftnl_chain_get_u32(ch.get(), NFTNL_CHAIN_FAMILY);
        if (fam != NFPROTO_IPV4 && fam != NFPROTO_IPV6 && fam != NFPROTO_INET &&
            fam != NFPROTO_NETDEV) {
          return;
        }
        if (!nftnl_chain_is_set(ch.get(), NFTNL_CHAIN_HOOKNUM)) return;
        const uint32_t hook = nftnl_chain_get_u32(ch.get(), NFTNL_CHAIN_HOOKNUM);
        // On the path of a packet to this host: netdev and inet ingress,
        // prerouting, input.
        const char* hook_name = nullptr;
        if (fam == NFPROTO_NETDEV) {
          if (hook == NF_NETDEV_INGRESS) hook_name = "ingress";
        } else if (hook == NF_INET_PRE_ROUTING) {
          hook_name = "prerouting";
        } else if (hook == NF_INET_LOCAL_IN) {
          hook_name = "input";
        } else if (fam == NFPROTO_INET && hook == NF_INET_INGRESS) {
          hook_name = "ingress";
        }
        if (hook_name == nullptr) return;
        const std::string table = nftnl_chain_get_str(ch.get(), NFTNL_CHAIN_TABLE);
        if (fam == NFPROTO_INET && table == own_table) return;
        hooked.push_back(Hooked{fam, table, nftnl_chain_get_str(ch.get(), NFTNL_CHAIN_NAME),
                                hook_name, nftnl_chain_get_s32(ch.get(), NFTNL_CHAIN_PRIO),
                                nftnl_chain_is_set(ch.get(), NFTNL_CHAIN_POLICY) &&
                                    nftnl_chain_get_u32(ch.get(), NFTNL_CHAIN_POLICY) == NF_DROP});
      },
      "list chains", NFPROTO_UNSPEC);
  if (!st.ok()) return st;
  std::vector<std::string> out;
  for (const Hooked& h : hooked) {
    // Rules of that chain that drop or reject, directly or through the
    // chains and verdict maps they jump or go to.
    DropFinder finder(nl, static_cast<uint16_t>(h.family), h.table);
    std::set<std::string> via;
    absl::StatusOr<int> counted = finder.Drops(h.chain, 0, &via);
    if (!counted.ok()) return counted.status();
    const int drops = *counted;
    if (!h.policy_drop && drops == 0) continue;
    std::vector<std::string> why;
    if (h.policy_drop) why.push_back("policy drop");
    if (drops > 0) {
      why.push_back(absl::StrCat(drops, " drop/reject rules",
                                 via.empty() ? "" : absl::StrCat(" (via ", absl::StrJoin(via, ", "), ")")));
    }
    const char* fam = h.family == NFPROTO_IPV4   ? "ip"
                      : h.family == NFPROTO_IPV6 ? "ip6"
                      : h.family == NFPROTO_NETDEV ? "netdev"
                                                   : "inet";
    out.push_back(absl::StrCat("table ", fam, " ", h.table, " chain ", h.chain, " (hook ", h.hook,
                               ", priority ", h.prio, "): ", absl::StrJoin(why, ", ")));
  }
  return out;
}

}  // namespace nodeward::platform::nft
