#ifndef NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_

#ifndef __linux__
#error "nft_packet_filter_linux is Linux-only"
#endif

#include <string>

#include "platform/packet_filter.h"

namespace nodeward::platform {

// nftables through libnftnl/libmnl: every change is one netlink batch
// (one kernel transaction). Never spawns nft. Works in the network namespace
// of the calling thread at the time of each call.
class NftPacketFilter final : public PacketFilter {
 public:
  explicit NftPacketFilter(std::string table = "nodeward") : table_(std::move(table)) {}

  // platform::PacketFilter
  absl::Status ReplaceTable(const FilterRuleset& ruleset) override;
  absl::Status DeleteTable() override;
  absl::StatusOr<bool> TableExists() override;

 private:
  std::string table_;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_NFT_PACKET_FILTER_LINUX_H_
