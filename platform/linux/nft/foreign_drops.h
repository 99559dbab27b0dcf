#ifndef NODEWARD_PLATFORM_LINUX_NFT_FOREIGN_DROPS_H_
#define NODEWARD_PLATFORM_LINUX_NFT_FOREIGN_DROPS_H_

#include <libmnl/libmnl.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nodeward::platform::nft {

// Base chains of other tables on the path of a packet to this host (netdev
// and inet ingress, prerouting, input) that can drop what `own_table` (inet)
// accepts: a drop policy, or rules that drop or reject directly or through
// the chains and verdict maps they jump or go to. One line per such chain.
absl::StatusOr<std::vector<std::string>> FindForeignDrops(mnl_socket* nl,
                                                          const std::string& own_table);

}  // namespace nodeward::platform::nft

#endif  // NODEWARD_PLATFORM_LINUX_NFT_FOREIGN_DROPS_H_
