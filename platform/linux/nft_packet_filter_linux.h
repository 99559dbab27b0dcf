#ifndef NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_

#ifndef __linux__
#error "nft_packet_filter_linux is Linux-only"
#endif

#include <string>

#include "platform/packet_filter.h"

namespace nodeward::platform {

// nftables through libnftnl/libmnl: every change is one netlink batch (one
// kernel transaction) guarded by the ruleset generation id. Never spawns
// nft. Works in the network namespace of the calling thread at the time of
// each call (Watch: at the time it is opened).
class NftPacketFilter final : public PacketFilter {
 public:
  explicit NftPacketFilter(std::string table = "nodeward") : table_(std::move(table)) {}

  // platform::PacketFilter
  absl::StatusOr<KernelTable> Read() override;
  absl::StatusOr<uint32_t> Commit(const FilterChange& change, uint32_t genid) override;
  absl::StatusOr<std::unique_ptr<FilterWatch>> Watch() override;
  absl::StatusOr<std::vector<std::string>> ForeignDrops() override;

  // Removes the table; OK if it was absent (tests and uninstall).
  absl::Status DeleteTable();

 private:
  std::string table_;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_
