#ifndef NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_

#ifndef __linux__
#error "nft_packet_filter_linux is Linux-only"
#endif

#include <sys/types.h>

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "platform/packet_filter.h"

struct mnl_socket;

namespace nodeward::platform {

// nftables through libnftnl/libmnl: every change is one netlink batch (one
// kernel transaction) guarded by the ruleset generation id. Never spawns
// nft. Works in the network namespace of the calling thread at the time of
// each call (Watch: at the time it is opened). Calls are serialised.
class NftPacketFilter final : public PacketFilter {
 public:
  explicit NftPacketFilter(std::string table = "nodeward") : table_(std::move(table)) {}
  ~NftPacketFilter() override;
  NftPacketFilter(const NftPacketFilter&) = delete;
  NftPacketFilter& operator=(const NftPacketFilter&) = delete;

  // platform::PacketFilter
  absl::StatusOr<KernelTable> Read() override;
  absl::StatusOr<uint32_t> Commit(const FilterChange& change, uint32_t genid) override;
  absl::StatusOr<std::unique_ptr<FilterWatch>> Watch() override;
  absl::StatusOr<std::vector<std::string>> ForeignDrops() override;

  // Removes the table; OK if it was absent (tests and uninstall).
  absl::Status DeleteTable();

 private:
  // The request socket, kept open across calls: closing a netfilter socket
  // makes the kernel first finish releasing whatever earlier transactions
  // removed (an RCU grace period: 5-30 ms measured on this VM), so a socket
  // per commit made every removal cost that. Kept open, the release runs in
  // the background. Reopened when the calling thread is in another network
  // namespace than the socket's, and after any error that may have left
  // replies unread.
  absl::StatusOr<mnl_socket*> Conn(size_t send_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Drop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<KernelTable> ReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint32_t> CommitLocked(const FilterChange& change, uint32_t genid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<std::string>> ForeignDropsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DeleteTableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string table_;
  absl::Mutex mu_;
  mnl_socket* conn_ ABSL_GUARDED_BY(mu_) = nullptr;
  ino_t conn_netns_ ABSL_GUARDED_BY(mu_) = 0;
  size_t conn_sndbuf_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_
