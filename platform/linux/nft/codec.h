#ifndef NODEWARD_PLATFORM_LINUX_NFT_CODEC_H_
#define NODEWARD_PLATFORM_LINUX_NFT_CODEC_H_

// The model (platform/packet_filter.h) to netlink and back: rules
// (rule_codec.cc: one fixed expression order per rule kind, so that what
// BuildRule writes reads back equal and anything else reads back kForeign)
// and set elements (set_codec.cc).

#include <libnftnl/rule.h>

#include <map>
#include <string>
#include <vector>

#include "absl/numeric/int128.h"
#include "platform/linux/nft/netlink.h"
#include "platform/packet_filter.h"

namespace nodeward::platform::nft {

// nftables' own values (include/datatype.h, include/rule.h of nftables).
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeIpv6Addr = 8;
constexpr uint8_t kUdataRuleComment = 0;
// ct state bits as nftables encodes them.
constexpr uint32_t kCtEstablished = 2;
constexpr uint32_t kCtRelated = 4;
// Intervals per NEWSETELEM message: well under the u16 attribute limit
// (~1,500 IPv4 / ~900 IPv6 intervals, netfilter-facts.md).
constexpr size_t kElemsPerMessage = 700;
constexpr char kInput[] = "input";

// Set and chain names the agent writes: [a-z0-9_]{1,128}.
bool ValidName(const std::string& s);

// One rule of `chain`; `set_ids` names the sets added in the same batch.
nftnl_rule* BuildRule(const std::string& table, const std::string& chain, const FilterRule& fr,
                      const std::map<std::string, uint32_t>& set_ids);
// A kernel rule in the model: kForeign (with its text) if it is not exactly
// what BuildRule writes.
FilterRule ReadRule(nftnl_rule* r);

// Address bytes in network order, and back.
std::string Key(absl::uint128 v, bool ipv6);
absl::uint128 FromKey(const uint8_t* p, size_t n);
absl::uint128 MaxKey(bool ipv6);

struct RawElem {
  absl::uint128 key;
  bool end;
  std::string chain;  // maps: jump target
};
// Parses NEWSETELEM replies without libnftnl objects (a 1M-element set
// would otherwise cost hundreds of bytes per element).
void ParseElems(const nlmsghdr* m, size_t keylen, std::vector<RawElem>* out);
// Elements back to intervals (see set_codec.cc).
void ToIntervals(std::vector<RawElem> elems, bool ipv6, FilterSet* s);
// NEWSETELEM/DELSETELEM messages for `intervals` (and map targets), at most
// kElemsPerMessage per message.
void AddElements(Batch& b, uint16_t type, const std::string& table, const std::string& set,
                 uint32_t set_id, bool ipv6, const std::vector<FilterInterval>& intervals,
                 const std::vector<std::string>& targets);

}  // namespace nodeward::platform::nft

#endif  // NODEWARD_PLATFORM_LINUX_NFT_CODEC_H_
