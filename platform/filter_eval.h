#ifndef NODEWARD_PLATFORM_FILTER_EVAL_H_
#define NODEWARD_PLATFORM_FILTER_EVAL_H_

// The ruleset model evaluated in user space for one packet that opens a
// connection: what the kernel's input chain would do with a NEW packet of
// that tuple. Used to find tracked connections the desired state forbids.

#include "platform/conntrack.h"
#include "platform/packet_filter.h"

namespace nodeward::platform {

// Whether `rules` (with their sets, maps and chains) accept a first packet
// of `c`'s original direction arriving on a non-loopback interface. Only
// TCP and UDP; established/related and ICMP rules never match a NEW
// TCP/UDP packet.
bool AcceptsNew(const FilterRuleset& rules, const ConnEntry& c);

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_FILTER_EVAL_H_
