#ifndef NODEWARD_PLATFORM_LINUX_NFT_WATCH_H_
#define NODEWARD_PLATFORM_LINUX_NFT_WATCH_H_

#include <memory>
#include <string>

#include "platform/linux/nft/netlink.h"
#include "platform/packet_filter.h"

namespace nodeward::platform::nft {

// Listens on the nftables multicast group `nl` joined; reports each
// committed transaction that touched `table` (inet family).
std::unique_ptr<FilterWatch> MakeWatch(Socket nl, std::string table);

}  // namespace nodeward::platform::nft

#endif  // NODEWARD_PLATFORM_LINUX_NFT_WATCH_H_
