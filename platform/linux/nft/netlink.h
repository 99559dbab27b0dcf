#ifndef NODEWARD_PLATFORM_LINUX_NFT_NETLINK_H_
#define NODEWARD_PLATFORM_LINUX_NFT_NETLINK_H_

// The netfilter netlink plumbing under NftPacketFilter (internal to
// platform/linux): libnftnl object deleters, a growable transaction batch,
// the socket, one-request round trips and rule dumps.

#include <arpa/inet.h>  // before the linux/ headers (struct in_addr)
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeward::platform::nft {

struct TableFree { void operator()(nftnl_table* p) const { nftnl_table_free(p); } };
struct ChainFree { void operator()(nftnl_chain* p) const { nftnl_chain_free(p); } };
struct SetFree { void operator()(nftnl_set* p) const { nftnl_set_free(p); } };
struct RuleFree { void operator()(nftnl_rule* p) const { nftnl_rule_free(p); } };
struct SocketClose { void operator()(mnl_socket* p) const { mnl_socket_close(p); } };
using Socket = std::unique_ptr<mnl_socket, SocketClose>;

// A batch of netlink messages, built one message at a time into a scratch
// buffer and appended, so the batch can grow to any size. The BEGIN message
// carries the ruleset generation the plan was made against: the kernel
// refuses the whole batch (ERESTART) if another transaction came in between.
class Batch {
 public:
  explicit Batch(uint32_t genid) : scratch_(256 * 1024) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(scratch_.data());
    nlh->nlmsg_type = NFNL_MSG_BATCH_BEGIN;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    nlh->nlmsg_seq = seq_++;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = AF_UNSPEC;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = htons(NFNL_SUBSYS_NFTABLES);
    if (genid != 0) mnl_attr_put_u32(nlh, NFNL_BATCH_GENID, htonl(genid));
    data_.append(scratch_.data(), nlh->nlmsg_len);
  }
  void Add(uint16_t type, uint16_t flags, const std::function<void(nlmsghdr*)>& build) {
    nlmsghdr* nlh =
        nftnl_nlmsg_build_hdr(scratch_.data(), type, NFPROTO_INET, flags | NLM_F_ACK, seq_++);
    build(nlh);
    data_.append(scratch_.data(), nlh->nlmsg_len);
    ++messages_;
  }
  void Reserve(size_t bytes) { data_.reserve(bytes); }
  size_t size() const { return data_.size() + 64; }  // with the end message
  const std::string& Finish() {
    nftnl_batch_end(scratch_.data(), seq_++);
    data_.append(scratch_.data(), reinterpret_cast<nlmsghdr*>(scratch_.data())->nlmsg_len);
    return data_;
  }
  size_t messages() const { return messages_; }

 private:
  std::vector<char> scratch_;
  std::string data_;
  uint32_t seq_ = 1;
  size_t messages_ = 0;
};

// Opens a netfilter netlink socket with buffers sized for `send_bytes`
// batches (and subscribed to `groups`).
absl::StatusOr<Socket> OpenSocket(size_t send_bytes, unsigned groups = 0);
void RaiseSendBuffer(mnl_socket* nl, size_t send_bytes, size_t* current);
// Sends the batch and reads one ack (or error) per message. The kernel
// applies all of the batch or none of it.
absl::Status Send(mnl_socket* nl, Batch& batch, absl::string_view what);
// Runs one request and hands each reply message to `cb` (NLM_F_DUMP for a
// dump, NLM_F_ACK for a single object). NOT_FOUND for ENOENT; ABORTED if a
// dump was interrupted by a concurrent change (re-read).
absl::Status Request(mnl_socket* nl, uint16_t type, uint16_t flags,
                     const std::function<void(nlmsghdr*)>& build,
                     const std::function<void(const nlmsghdr*)>& cb, absl::string_view what,
                     uint16_t family = NFPROTO_INET);
absl::StatusOr<uint32_t> GetGenid(mnl_socket* nl);
// Dumps the rules of `table` (optionally one chain) and hands each parsed
// rule to `fn`.
absl::Status DumpRules(mnl_socket* nl, const std::string& table, const std::string& chain,
                       uint16_t family, const std::function<void(nftnl_rule*)>& fn);

// libmnl's attribute loops are C macros that C++ does not accept.
template <typename F>
void ForEachAttr(const nlmsghdr* m, size_t offset, F f) {
  const auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(m, offset));
  const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(m));
  while (mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)))) {
    f(a);
    a = mnl_attr_next(a);
  }
}
template <typename F>
void ForEachNested(const nlattr* nest, F f) {
  const auto* a = static_cast<const nlattr*>(mnl_attr_get_payload(nest));
  const char* end = static_cast<const char*>(mnl_attr_get_payload(nest)) +
                    mnl_attr_get_payload_len(nest);
  while (mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char*>(a)))) {
    f(a);
    a = mnl_attr_next(a);
  }
}

}  // namespace nodeward::platform::nft

#endif  // NODEWARD_PLATFORM_LINUX_NFT_NETLINK_H_
