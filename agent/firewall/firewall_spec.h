#ifndef NODEWARD_AGENT_FIREWALL_FIREWALL_SPEC_H_
#define NODEWARD_AGENT_FIREWALL_FIREWALL_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/firewall/cidr.h"

namespace nodeward::firewall {

enum class Protocol { kTcp, kUdp };

struct PortRange {
  uint32_t first = 0;
  uint32_t last = 0;  // equal to first for a single port
};

// One customer-facing service, as an ApplyFirewall command states it.
struct ServiceSpec {
  std::string name;
  Protocol protocol = Protocol::kTcp;
  std::vector<PortRange> ports;
  // As sent, viewing the command's own strings (the command outlives the
  // spec): validated and normalised below. No copy of a million CIDRs.
  std::vector<absl::string_view> allowed_cidrs;
  // FirewallService.allowed_cidrs_packed, also a view into the command.
  absl::string_view allowed_packed;
  // Explicitly open to every source. A bare 0.0.0.0/0 or ::/0 in
  // allowed_cidrs without this flag is refused: "open" must be signed as such.
  bool allow_all = false;
};

// The complete desired state (never a patch), as sent.
struct FirewallSpec {
  uint64_t generation = 0;
  std::vector<ServiceSpec> services;
  std::vector<absl::string_view> internal_peers;  // other VMs of the service
  bool private_only = false;                // VPC peering: no public source at all
};

struct ValidationLimits {
  // Most CIDRs over all services and peers (each becomes set elements).
  size_t max_elements = 2000000;
  size_t max_services = 64;
};

// A validated service: allow-lists normalised per family.
struct Service {
  std::string name;
  Protocol protocol = Protocol::kTcp;
  std::vector<PortRange> ports;  // sorted, merged
  bool allow_all = false;
  std::vector<Interval> allowed_v4;
  std::vector<Interval> allowed_v6;
};

struct ValidatedFirewall {
  uint64_t generation = 0;
  bool private_only = false;
  std::vector<Service> services;  // sorted by name
  std::vector<Interval> peers_v4;
  std::vector<Interval> peers_v6;
  // CIDRs that had host bits set and were normalised (e.g. "10.1.2.3/8 ->
  // 10.0.0.0/8"), reported back to the sender.
  std::vector<std::string> normalised;
};

// Checks a desired state against the refusal rules of the firewall issue
// (threats.md cases 31, 39): INVALID_ARGUMENT naming the service and value
// for a malformed or v4-mapped CIDR, a bare 0.0.0.0/0 or ::/0 without
// allow_all, allow_all with CIDRs beside it, a public CIDR (or allow_all) in
// private_only mode, port 0 or above 65535, an inverted range, no ports, a
// duplicate or malformed service name; RESOURCE_EXHAUSTED above the element
// cap; FAILED_PRECONDITION for a generation not above `highest_generation`
// (every generation ever applied counts, rolled-back ones too).
// Pure: no state is read or changed.
absl::StatusOr<ValidatedFirewall> ValidateFirewall(const FirewallSpec& spec,
                                                   uint64_t highest_generation,
                                                   const ValidationLimits& limits = {});

}  // namespace nodeward::firewall

#endif  // NODEWARD_AGENT_FIREWALL_FIREWALL_SPEC_H_
