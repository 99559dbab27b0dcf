// AcceptsNew: the ruleset model evaluated for a connection's first packet.
#include "platform/filter_eval.h"

#include <netinet/in.h>

#include "agent/firewall/cidr.h"
#include "agent/firewall/firewall_spec.h"
#include "agent/firewall/ruleset_builder.h"
#include "gtest/gtest.h"

namespace nodeward::platform {
namespace {

ConnEntry Conn(bool ipv6, absl::uint128 src, uint8_t proto, uint16_t dport, uint16_t sport = 40000) {
  ConnEntry e;
  e.ipv6 = ipv6;
  e.src = src;
  e.protocol = proto;
  e.dport = dport;
  e.sport = sport;
  e.inbound = true;
  return e;
}

TEST(FilterEvalTest, FollowsSetsShardsMapsAndPorts) {
  firewall::ManagementAccess m{{firewall::ParseCidr("203.0.113.0/24").value()}, {7443, 22}};
  firewall::FirewallSpec spec;
  spec.generation = 1;
  // Enough sources for the list to be sharded behind a verdict map (max 4
  // per shard here).
  std::vector<std::string> cidrs;
  for (int i = 0; i < 40; ++i) cidrs.push_back("10.1." + std::to_string(2 * i) + ".0/24");
  firewall::ServiceSpec pg;
  pg.name = "pg";
  pg.protocol = firewall::Protocol::kTcp;
  pg.ports = {{5432, 5433}};
  for (const auto& c : cidrs) pg.allowed_cidrs.push_back(c);
  spec.services.push_back(pg);
  auto v = firewall::ValidateFirewall(spec, 0);
  ASSERT_TRUE(v.ok()) << v.status();
  const FilterRuleset r = firewall::BuildRuleset(m, &*v, 4);
  ASSERT_FALSE(r.chains.empty()) << "the test wants the sharded (verdict map) shape";
  const absl::uint128 in_list = (absl::uint128(10) << 24) | (1 << 16) | (34 << 8) | 7;
  const absl::uint128 outside = (absl::uint128(10) << 24) | (2 << 16) | 7;
  EXPECT_TRUE(AcceptsNew(r, Conn(false, in_list, IPPROTO_TCP, 5433)));
  EXPECT_FALSE(AcceptsNew(r, Conn(false, in_list, IPPROTO_TCP, 5434)));
  EXPECT_FALSE(AcceptsNew(r, Conn(false, in_list, IPPROTO_UDP, 5432)));
  EXPECT_FALSE(AcceptsNew(r, Conn(false, outside, IPPROTO_TCP, 5432)));
  const absl::uint128 mgmt = (absl::uint128(203) << 24) | (113 << 8) | 1;
  EXPECT_TRUE(AcceptsNew(r, Conn(false, mgmt, IPPROTO_TCP, 22)));
  EXPECT_FALSE(AcceptsNew(r, Conn(false, mgmt, IPPROTO_TCP, 5432)));
  // DHCP replies: v4 by ports, v6 from link-local only.
  EXPECT_TRUE(AcceptsNew(r, Conn(false, outside, IPPROTO_UDP, 68, 67)));
  const absl::uint128 fe80 = absl::uint128(0xfe80) << 112 | 2;
  const absl::uint128 global = absl::uint128(0x20010db8) << 96 | 2;
  EXPECT_TRUE(AcceptsNew(r, Conn(true, fe80, IPPROTO_UDP, 546, 547)));
  EXPECT_FALSE(AcceptsNew(r, Conn(true, global, IPPROTO_UDP, 546, 547)));
}

}  // namespace
}  // namespace nodeward::platform
