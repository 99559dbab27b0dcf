// The nftables event watch (NEWGEN-terminated transactions).
#include "platform/linux/nft/watch.h"

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
#include "platform/linux/nft/netlink.h"

namespace nodeward::platform::nft {
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
            if (type == NFT_MSG_DELTABLE) pending_.table_deleted = true;
            if (type == NFT_MSG_NEWTABLE) pending_.table_deleted = false;
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

std::unique_ptr<FilterWatch> MakeWatch(Socket nl, std::string table) {
  return std::make_unique<NftWatch>(std::move(nl), std::move(table));
}

}  // namespace nodeward::platform::nft
