// Sharding of large allow-lists: every address keeps its verdict, shards are
// bounded, disjoint and deterministic, and a one-element change touches one
// shard.
#include "agent/firewall/ruleset_builder.h"

#include <random>
#include <set>

#include "gtest/gtest.h"

namespace nodeward::firewall {
namespace {

std::vector<Interval> RandomList(std::mt19937_64& rng, int n, Family f) {
  std::vector<Cidr> cidrs;
  for (int i = 0; i < n; ++i) {
    Cidr c;
    c.family = f;
    const int width = f == Family::kIpv4 ? 32 : 128;
    c.prefix = static_cast<int>(rng() % 9) + width - 8;
    Address a = f == Family::kIpv4 ? Address(rng() & 0xffffffffu)
                                   : absl::MakeUint128(rng(), rng());
    c.network = a & ~((Address(1) << (width - c.prefix)) - 1);
    cidrs.push_back(c);
  }
  return Normalise(cidrs, f);
}

bool InShards(const std::vector<Shard>& shards, Address a) {
  for (const Shard& s : shards) {
    if (a < s.block.first || a > s.block.last) continue;
    return Contains(s.members, a);
  }
  return false;
}

TEST(ShardTest, EveryAddressKeepsItsVerdict) {
  std::mt19937_64 rng(1);
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    const std::vector<Interval> list = RandomList(rng, 3000, f);
    const std::vector<Shard> shards = ShardIntervals(list, f, 64);
    ASSERT_GT(shards.size(), 10u);
    for (size_t i = 0; i < shards.size(); ++i) {
      EXPECT_LE(shards[i].members.size(), 64u);
      EXPECT_FALSE(shards[i].members.empty());
      if (i > 0) {
        EXPECT_LT(shards[i - 1].block.last, shards[i].block.first);
      }
      for (const Interval& m : shards[i].members) {
        EXPECT_GE(m.first, shards[i].block.first);
        EXPECT_LE(m.last, shards[i].block.last);
      }
    }
    for (int i = 0; i < 20000; ++i) {
      // Probe near interval edges as well as at random.
      const Interval& iv = list[rng() % list.size()];
      Address probes[] = {iv.first, iv.last, iv.first - 1, iv.last + 1,
                          f == Family::kIpv4 ? Address(rng() & 0xffffffffu)
                                             : absl::MakeUint128(rng(), rng())};
      for (Address a : probes) ASSERT_EQ(InShards(shards, a), Contains(list, a));
    }
  }
}

TEST(ShardTest, DeterministicAndLocal) {
  std::mt19937_64 rng(2);
  std::vector<Interval> list = RandomList(rng, 5000, Family::kIpv4);
  const std::vector<Shard> a = ShardIntervals(list, Family::kIpv4, 256);
  const std::vector<Shard> b = ShardIntervals(list, Family::kIpv4, 256);
  ASSERT_EQ(a.size(), b.size());
  // One more /32 in a gap: at most one shard's members change (or one
  // shard splits in two).
  size_t i = 100;
  while (list[i + 1].first <= list[i].last + 3) ++i;
  std::vector<Interval> more = list;
  const Address extra = list[i].last + 2;
  more.insert(more.begin() + static_cast<long>(i) + 1, Interval{extra, extra});
  const std::vector<Shard> c = ShardIntervals(more, Family::kIpv4, 256);
  std::set<std::pair<std::string, size_t>> before, after;
  auto key = [](const Shard& s) {
    return std::to_string(static_cast<uint64_t>(s.block.first)) + "/" + std::to_string(s.prefix);
  };
  for (const Shard& s : a) before.insert({key(s), s.members.size()});
  for (const Shard& s : c) after.insert({key(s), s.members.size()});
  size_t changed = 0;
  for (const auto& x : after) changed += before.count(x) == 0;
  EXPECT_LE(changed, 2u);
}

TEST(BuildRulesetTest, SmallListIsOneSetLargeListIsAMap) {
  ValidatedFirewall v;
  Service s;
  s.name = "pg";
  s.ports = {{5432, 5432}};
  for (uint32_t i = 0; i < 10; ++i) s.allowed_v4.push_back({i * 4, i * 4});
  v.services.push_back(s);
  ManagementAccess m{{ParseCidr("192.0.2.0/24").value()}, {22}};
  platform::FilterRuleset small = BuildRuleset(m, &v, 16);
  EXPECT_TRUE(small.chains.empty());
  platform::FilterRuleset big = BuildRuleset(m, &v, 4);
  EXPECT_GE(big.chains.size(), 3u);
  bool map_rule = false;
  for (const auto& r : big.rules) map_rule = map_rule || r.source_map == "svc_pg_v4_map";
  EXPECT_TRUE(map_rule);
  // Management access is there in both, first of the source rules.
  bool mgmt = false;
  for (const auto& r : big.rules) mgmt = mgmt || r.source_set == "mgmt_v4";
  EXPECT_TRUE(mgmt);
}

}  // namespace
}  // namespace nodeward::firewall
