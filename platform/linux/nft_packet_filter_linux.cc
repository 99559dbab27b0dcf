// NftPacketFilter: the request socket, the locking and the entry points;
// read-back in nft/read.cc, the transaction in nft/commit.cc, the event
// watch in nft/watch.cc, the model<->netlink codec in nft/*_codec.cc.
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
#include "platform/linux/nft/watch.h"
#include "platform/linux/nft/codec.h"
#include "platform/linux/nft/netlink.h"

namespace nodeward::platform {
namespace {

using namespace nft;  // netlink plumbing, the codec and its constants

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

absl::StatusOr<std::vector<std::string>> NftPacketFilter::ForeignDropsLocked() {
  absl::StatusOr<mnl_socket*> nl = Conn(0);
  if (!nl.ok()) return nl.status();
  return nft::FindForeignDrops(*nl, table_);
}

absl::StatusOr<std::unique_ptr<FilterWatch>> NftPacketFilter::Watch() {
  absl::StatusOr<Socket> nl = OpenSocket(0, 1u << (NFNLGRP_NFTABLES - 1));
  if (!nl.ok()) return nl.status();
  return nft::MakeWatch(std::move(nl).value(), table_);
}



}  // namespace nodeward::platform
