#include "platform/linux/nft/netlink.h"

#include <linux/netfilter/nf_tables.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodeward::platform::nft {

absl::StatusOr<Socket> OpenSocket(size_t send_bytes, unsigned groups) {
  Socket nl(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!nl) return absl::ErrnoToStatus(errno, "open netfilter netlink socket");
  if (mnl_socket_bind(nl.get(), groups, MNL_SOCKET_AUTOPID) < 0) {
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

void RaiseSendBuffer(mnl_socket* nl, size_t send_bytes, size_t* current) {
  const size_t want = std::max<size_t>(send_bytes + 65536, 212992);
  if (want <= *current) return;
  int fd = mnl_socket_get_fd(nl);
  int snd = static_cast<int>(want);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
  }
  *current = want;
}

// Sends the batch and reads one ack (or error) per message. The kernel
// applies all of the batch or none of it.
absl::Status Send(mnl_socket* nl, Batch& batch, absl::string_view what) {
  const std::string& data = batch.Finish();
  if (mnl_socket_sendto(nl, data.data(), data.size()) < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(what, ": send netlink batch"));
  }
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  size_t answered = 0;
  int first_error = 0;
  while (answered < batch.messages()) {
    int n = static_cast<int>(mnl_socket_recvfrom(nl, buf.data(), buf.size()));
    if (n < 0) {
      // ENOBUFS (acks dropped) or a timeout: the transaction may still have
      // landed (netfilter-facts.md). Only a re-read tells.
      return absl::UnknownError(absl::StrCat(what, ": reading the acks failed (",
                                             std::strerror(errno),
                                             "); outcome unknown, re-read the kernel"));
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
  if (first_error == ERESTART) {
    return absl::AbortedError(
        absl::StrCat(what, ": another writer changed the ruleset since it was read"));
  }
  if (first_error != 0) {
    return absl::ErrnoToStatus(first_error,
                               absl::StrCat(what, ": the kernel refused the transaction"));
  }
  return absl::OkStatus();
}

// Runs one request and hands each reply message to `cb` (NLM_F_DUMP for a
// dump, NLM_F_ACK for a single object). NOT_FOUND for ENOENT; ABORTED if a
// dump was interrupted by a concurrent change (re-read).
absl::Status Request(mnl_socket* nl, uint16_t type, uint16_t flags,
                     const std::function<void(nlmsghdr*)>& build,
                     const std::function<void(const nlmsghdr*)>& cb, absl::string_view what,
                     uint16_t family) {
  static uint32_t seq_counter = 1000;
  const uint32_t seq = __atomic_add_fetch(&seq_counter, 1, __ATOMIC_RELAXED);
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 8);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, family, flags, seq);
  if (build) build(nlh);
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(what, ": send"));
  }
  const uint32_t portid = mnl_socket_get_portid(nl);
  struct Ctx {
    const std::function<void(const nlmsghdr*)>* cb;
  } ctx{&cb};
  auto trampoline = [](const nlmsghdr* m, void* data) -> int {
    (*static_cast<Ctx*>(data)->cb)(m);
    return MNL_CB_OK;
  };
  while (true) {
    int n = static_cast<int>(mnl_socket_recvfrom(nl, buf.data(), buf.size()));
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat(what, ": receive"));
    int ret = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, portid, trampoline, &ctx);
    if (ret < 0) {
      if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(what, ": not found"));
      if (errno == EINTR) return absl::AbortedError(absl::StrCat(what, ": interrupted by a change"));
      return absl::ErrnoToStatus(errno, what);
    }
    if (ret == MNL_CB_STOP) return absl::OkStatus();
  }
}

absl::StatusOr<uint32_t> GetGenid(mnl_socket* nl) {
  uint32_t genid = 0;
  bool got = false;
  absl::Status s = Request(
      nl, NFT_MSG_GETGEN, NLM_F_ACK, nullptr,
      [&](const nlmsghdr* m) {
        ForEachAttr(m, sizeof(nfgenmsg), [&](const nlattr* a) {
          if (mnl_attr_get_type(a) == NFTA_GEN_ID) {
            genid = ntohl(mnl_attr_get_u32(a));
            got = true;
          }
        });
      },
      "read nftables generation");
  if (!s.ok()) return s;
  if (!got) return absl::InternalError("read nftables generation: no id in the reply");
  return genid;
}

// Dumps the rules of `table` (optionally one chain) and hands each parsed
// rule to `fn`.
absl::Status DumpRules(mnl_socket* nl, const std::string& table, const std::string& chain,
                       uint16_t family, const std::function<void(nftnl_rule*)>& fn) {
  std::unique_ptr<nftnl_rule, RuleFree> filter(nftnl_rule_alloc());
  nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
  if (!chain.empty()) nftnl_rule_set_str(filter.get(), NFTNL_RULE_CHAIN, chain.c_str());
  return Request(
      nl, NFT_MSG_GETRULE, NLM_F_DUMP,
      [&](nlmsghdr* n) { nftnl_rule_nlmsg_build_payload(n, filter.get()); },
      [&](const nlmsghdr* m) {
        std::unique_ptr<nftnl_rule, RuleFree> r(nftnl_rule_alloc());
        if (nftnl_rule_nlmsg_parse(m, r.get()) < 0) return;
        if (table != nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE)) return;
        if (!chain.empty() && chain != nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN)) return;
        fn(r.get());
      },
      "read rules", family);
}

}  // namespace nodeward::platform::nft
