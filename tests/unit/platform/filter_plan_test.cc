// The transaction planner: smallest change, valid reference order (checked
// by applying it with the kernel's rules), and a property test over random
// rulesets: plan(current -> desired) applied gives exactly desired, and a
// second plan is empty.
#include "platform/filter_plan.h"

#include <random>

#include "agent/firewall/ruleset_builder.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::IsOk;

std::string Canon(const FilterRuleset& r) {
  std::string out;
  Canonical(r, [&](absl::string_view p) { out.append(p.data(), p.size()); });
  return out;
}

FilterRuleset Desired(const std::vector<firewall::Interval>& v4, size_t shard = 4) {
  firewall::ValidatedFirewall v;
  firewall::Service s;
  s.name = "pg";
  s.ports = {{5432, 5432}};
  s.allowed_v4 = v4;
  v.services.push_back(s);
  firewall::ManagementAccess m{{firewall::ParseCidr("192.0.2.0/24").value()}, {22}};
  return firewall::BuildRuleset(m, &v, shard);
}

KernelTable Applied(const FilterRuleset& r) {
  KernelTable t;
  EXPECT_THAT(ApplyChange(PlanChange(t, r), &t), IsOk());
  return t;
}

TEST(FilterPlanTest, MissingTableIsAFullReplace) {
  FilterChange c = PlanChange(KernelTable{}, Desired({{10, 10}}));
  EXPECT_TRUE(c.replace_table);
  EXPECT_TRUE(c.base_rules.has_value());
  EXPECT_FALSE(c.add_sets.empty());
}

TEST(FilterPlanTest, SameStateIsNoChange) {
  KernelTable t = Applied(Desired({{10, 10}, {20, 30}}));
  EXPECT_TRUE(PlanChange(t, Desired({{10, 10}, {20, 30}})).empty());
}

TEST(FilterPlanTest, OneMoreSourceIsOneElementAdd) {
  KernelTable t = Applied(Desired({{10, 10}, {20, 30}}));
  FilterChange c = PlanChange(t, Desired({{10, 10}, {15, 15}, {20, 30}}));
  EXPECT_FALSE(c.replace_table);
  EXPECT_FALSE(c.base_rules.has_value());
  ASSERT_EQ(c.add_elements.size(), 1u);
  EXPECT_EQ(c.add_elements[0].intervals, (std::vector<FilterInterval>{{15, 15}}));
  EXPECT_TRUE(c.delete_elements.empty());
  EXPECT_THAT(ApplyChange(c, &t), IsOk());
}

// Digests spare the comparison of unchanged sets, and never hide a change:
// the builder and a read-back set them, an edit resets them.
TEST(FilterPlanTest, DigestsSkipOnlyWhatIsReallyEqual) {
  const FilterRuleset a = Desired({{10, 10}, {20, 30}, {40, 40}, {50, 60}, {70, 70}}, 2);
  for (const FilterSet& s : a.sets) {
    EXPECT_NE(s.digest, 0u) << s.name;
    EXPECT_EQ(s.digest, SetDigest(s)) << s.name;
  }
  FilterSet other = a.sets[0];
  other.intervals.back().last += 1;
  EXPECT_NE(SetDigest(other), SetDigest(a.sets[0]));
  other = a.sets[0];
  other.ipv6 = !other.ipv6;
  EXPECT_NE(SetDigest(other), SetDigest(a.sets[0]));

  KernelTable t;
  t.exists = t.structure_ok = true;
  t.ruleset = a;
  EXPECT_TRUE(PlanChange(t, a).empty());
  // One element more in one shard: found, whether or not the current side
  // still has its digest.
  const FilterRuleset b = Desired({{10, 10}, {20, 30}, {40, 40}, {45, 45}, {50, 60}, {70, 70}}, 2);
  for (bool keep_digests : {true, false}) {
    KernelTable cur = t;
    if (!keep_digests) {
      for (FilterSet& s : cur.ruleset.sets) s.digest = 0;
    }
    FilterChange c = PlanChange(cur, b);
    ASSERT_FALSE(c.replace_table);
    EXPECT_EQ(Canon(b), [&] {
      EXPECT_THAT(ApplyChange(c, &cur), IsOk());
      return Canon(cur.ruleset);
    }());
  }
  // ApplyChange resets the digest of what it edited.
  KernelTable cur = t;
  ASSERT_THAT(ApplyChange(PlanChange(cur, b), &cur), IsOk());
  int reset = 0;
  for (const FilterSet& s : cur.ruleset.sets) reset += s.digest == 0;
  EXPECT_GE(reset, 1);
}

TEST(FilterPlanTest, ChangedIntervalIsDeleteThenAdd) {
  KernelTable t = Applied(Desired({{10, 10}, {20, 30}}));
  FilterChange c = PlanChange(t, Desired({{10, 10}, {20, 40}}));
  ASSERT_EQ(c.delete_elements.size(), 1u);
  ASSERT_EQ(c.add_elements.size(), 1u);
  EXPECT_EQ(c.delete_elements[0].intervals, (std::vector<FilterInterval>{{20, 30}}));
  EXPECT_EQ(c.add_elements[0].intervals, (std::vector<FilterInterval>{{20, 40}}));
  EXPECT_THAT(ApplyChange(c, &t), IsOk());
}

TEST(FilterPlanTest, ForeignRuleAndObjectsAreRemoved) {
  const FilterRuleset want = Desired({{10, 10}});
  KernelTable t = Applied(want);
  FilterRule foreign;
  foreign.kind = FilterRule::Kind::kForeign;
  foreign.source_set = "ip saddr 10.0.0.3 accept";
  t.ruleset.rules.insert(t.ruleset.rules.begin(), foreign);
  t.ruleset.sets.push_back(FilterSet{"junk", false, {{1, 1}}, {}});
  t.ruleset.chains.push_back(FilterChain{"junk", {}});
  FilterChange c = PlanChange(t, want);
  EXPECT_TRUE(c.base_rules.has_value());
  EXPECT_EQ(c.delete_sets, (std::vector<std::string>{"junk"}));
  EXPECT_EQ(c.delete_chains, (std::vector<std::string>{"junk"}));
  ASSERT_THAT(ApplyChange(c, &t), IsOk());
  EXPECT_EQ(Canon(t.ruleset), Canon(want));
}

TEST(FilterPlanTest, BrokenStructureIsAFullReplace) {
  KernelTable t = Applied(Desired({{10, 10}}));
  t.structure_ok = false;  // e.g. policy accept, or a foreign base chain
  EXPECT_TRUE(PlanChange(t, Desired({{10, 10}})).replace_table);
}

TEST(FilterPlanTest, GrowingPastOneShardMovesToAVerdictMap) {
  KernelTable t = Applied(Desired({{10, 10}, {20, 20}}));
  std::vector<firewall::Interval> many;
  for (uint32_t i = 0; i < 40; ++i) many.push_back({i * 10, i * 10 + 1});
  const FilterRuleset want = Desired(many);
  FilterChange c = PlanChange(t, want);
  EXPECT_FALSE(c.replace_table);
  ASSERT_THAT(ApplyChange(c, &t), IsOk());  // references stay valid at each step
  EXPECT_EQ(Canon(t.ruleset), Canon(want));
  // And back down to one set.
  const FilterRuleset small = Desired({{10, 10}});
  ASSERT_THAT(ApplyChange(PlanChange(t, small), &t), IsOk());
  EXPECT_EQ(Canon(t.ruleset), Canon(small));
}

// Property: from any state to any state in one valid transaction.
TEST(FilterPlanTest, RandomWalkAlwaysLandsExactly) {
  std::mt19937 rng(7);
  KernelTable t;
  for (int step = 0; step < 300; ++step) {
    std::vector<firewall::Interval> v;
    const int n = static_cast<int>(rng() % 60);
    uint32_t at = rng() % 50;
    for (int i = 0; i < n; ++i) {
      const uint32_t len = rng() % 5;
      v.push_back({at, at + len});
      at += len + 2 + rng() % 20;  // disjoint, non-adjacent
    }
    const FilterRuleset want = Desired(v, 1 + rng() % 8);
    FilterChange c = PlanChange(t, want, /*by_reference=*/step % 2 == 0);
    ASSERT_THAT(ApplyChange(c, &t), IsOk()) << "step " << step << ": " << Describe(c);
    ASSERT_EQ(Canon(t.ruleset), Canon(want)) << "step " << step;
    ASSERT_TRUE(PlanChange(t, want).empty()) << "step " << step;
  }
}

TEST(FilterPlanTest, CountsAndDescription) {
  FilterRuleset r = Desired({{10, 10}, {20, 30}});
  ElementCounts n = CountElements(r);
  EXPECT_EQ(n.ipv4, 3u);  // 2 service + 1 management
  EXPECT_EQ(n.ipv6, 0u);
  EXPECT_EQ(Describe(FilterChange{}), "no change");
}

}  // namespace
}  // namespace nodeward::platform
