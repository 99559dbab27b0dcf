// CIDR parsing and interval normalisation (threats.md case 39), with a
// property test against a naive membership check.
#include "agent/firewall/cidr.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace nodeward::firewall {
namespace {

using testing::IsOk;
using testing::StatusIs;

TEST(ParseCidrTest, AcceptsAndCanonicalises) {
  auto c = ParseCidr("192.168.1.15/32");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(FormatCidr(*c), "192.168.1.15/32");
  EXPECT_FALSE(c->had_host_bits);
  c = ParseCidr("10.1.2.3/8");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(FormatCidr(*c), "10.0.0.0/8");
  EXPECT_TRUE(c->had_host_bits);
  EXPECT_EQ(FormatCidr(ParseCidr("2001:db8::1/32").value()), "2001:db8::/32");
  EXPECT_EQ(FormatCidr(ParseCidr("2001:db8::1").value()), "2001:db8::1/128");
  EXPECT_EQ(FormatCidr(ParseCidr("1.2.3.4").value()), "1.2.3.4/32");
  EXPECT_TRUE(IsEverything(ParseCidr("0.0.0.0/0").value()));
  EXPECT_TRUE(IsEverything(ParseCidr("::/0").value()));
}

TEST(ParseCidrTest, RefusesMalformed) {
  for (const char* bad : {"", "/8", "10.0.0.0/33", "300.1.1.1", "1.2.3", "1.2.3.4/", "1.2.3.4/-1",
                          "1.2.3.4/+8", "1.2.3.4/ 8", "1.2.3.4/0x8", "::/129", "::ffff:1.2.3.4",
                          "::ffff:0:0/96", "2001:db8::/64/1", "01.2.3.4", "fe80::1%eth0",
                          "1.2.3.4/0008"}) {
    EXPECT_THAT(ParseCidr(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(NormaliseTest, MergesOverlapNestingAndAdjacency) {
  std::vector<Cidr> in;
  for (const char* s : {"10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "10.0.3.0/24",
                        "192.168.0.1", "192.168.0.0/31", "2001:db8::/64"}) {
    in.push_back(ParseCidr(s).value());
  }
  auto v4 = Normalise(in, Family::kIpv4);
  ASSERT_EQ(v4.size(), 3u);
  EXPECT_EQ(FormatCidr({Family::kIpv4, v4[0].first, 32}), "10.0.0.0/32");
  EXPECT_EQ(v4[0].last - v4[0].first + 1, 512u);  // 10.0.0.0 - 10.0.1.255
  EXPECT_EQ(v4[2].last - v4[2].first + 1, 2u);
  EXPECT_EQ(Normalise(in, Family::kIpv6).size(), 1u);
}

TEST(NormaliseTest, EdgesOfTheAddressSpace) {
  std::vector<Cidr> in = {ParseCidr("255.255.255.255").value(), ParseCidr("0.0.0.0").value(),
                          ParseCidr("255.255.255.254").value()};
  auto v4 = Normalise(in, Family::kIpv4);
  ASSERT_EQ(v4.size(), 2u);
  EXPECT_EQ(v4[1].last, absl::uint128(0xffffffffu));
  auto all6 = Normalise({ParseCidr("::/0").value(), ParseCidr("2001:db8::/32").value()},
                        Family::kIpv6);
  ASSERT_EQ(all6.size(), 1u);
  EXPECT_EQ(all6[0].last, ~absl::uint128(0));
}

// Property: for random CIDR sets and random probes, interval membership
// equals "some CIDR contains it", and the intervals are sorted, disjoint and
// never adjacent (minimal).
TEST(NormaliseTest, PropertyMatchesNaiveMembership) {
  std::mt19937_64 rng(20261128);
  for (int round = 0; round < 300; ++round) {
    const bool v6 = round % 3 == 0;
    const Family fam = v6 ? Family::kIpv6 : Family::kIpv4;
    const int bits = v6 ? 128 : 32;
    // A narrow base so CIDRs collide, nest and touch often.
    const Address base = v6 ? absl::MakeUint128(0x20010db800000000ull, 0) : Address(0x0a000000u);
    std::vector<Cidr> cidrs;
    int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      Cidr c;
      c.family = fam;
      c.prefix = bits - static_cast<int>(rng() % 12);
      Address host = Address(rng() % 4096);
      Address mask = c.prefix == bits ? Address(0) : ((Address(1) << (bits - c.prefix)) - 1);
      c.network = (base + host) & ~mask;
      cidrs.push_back(c);
    }
    auto iv = Normalise(cidrs, fam);
    for (size_t i = 1; i < iv.size(); ++i) {
      ASSERT_LT(iv[i - 1].last + 1, iv[i].first) << "not minimal/disjoint in round " << round;
    }
    for (int probe = 0; probe < 200; ++probe) {
      Address a = base + Address(rng() % 8192) - Address(64);
      bool naive = false;
      for (const Cidr& c : cidrs) naive |= (a >= FirstAddress(c) && a <= LastAddress(c));
      ASSERT_EQ(Contains(iv, a), naive) << "round " << round;
    }
  }
}

TEST(PrivateTest, ClassifiesRanges) {
  EXPECT_TRUE(IsPrivate(ParseCidr("10.1.0.0/16").value()));
  EXPECT_TRUE(IsPrivate(ParseCidr("172.31.255.255").value()));
  EXPECT_FALSE(IsPrivate(ParseCidr("172.32.0.0/16").value()));
  EXPECT_FALSE(IsPrivate(ParseCidr("8.8.8.8").value()));
  EXPECT_FALSE(IsPrivate(ParseCidr("10.0.0.0/7").value()));  // reaches past 10/8
  EXPECT_TRUE(IsPrivate(ParseCidr("fd00::/8").value()));
  EXPECT_FALSE(IsPrivate(ParseCidr("2001:db8::/32").value()));
}

}  // namespace
}  // namespace nodeward::firewall
