// The refusal rules of ApplyFirewall, checked before anything touches the
// kernel (threats.md cases 31 and 39).
#include "agent/firewall/firewall_spec.h"

#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace nodeward::firewall {
namespace {

using absl::StatusCode;
using testing::IsOk;
using testing::StatusIs;

FirewallSpec Base() {
  FirewallSpec f;
  f.generation = 5;
  ServiceSpec pg;
  pg.name = "pg";
  pg.ports = {{5432, 5432}};
  pg.allowed_cidrs = {"192.168.1.15/32", "2001:db8::/48"};
  f.services.push_back(pg);
  f.internal_peers = {"10.0.0.2", "10.0.0.3"};
  return f;
}

TEST(ValidateFirewallTest, AcceptsAndNormalises) {
  FirewallSpec f = Base();
  f.services[0].allowed_cidrs.push_back("10.1.2.3/8");
  f.services[0].allowed_cidrs.push_back("10.200.0.0/16");  // nested in 10/8
  f.services[0].ports.push_back({6432, 6433});
  f.services[0].ports.push_back({6434, 6434});  // adjacent: merged
  auto v = ValidateFirewall(f, 4);
  ASSERT_THAT(v, IsOk());
  ASSERT_EQ(v->services.size(), 1u);
  EXPECT_EQ(v->services[0].allowed_v4.size(), 2u);  // 10/8 and 192.168.1.15
  EXPECT_EQ(v->services[0].allowed_v6.size(), 1u);
  ASSERT_EQ(v->services[0].ports.size(), 2u);
  EXPECT_EQ(v->services[0].ports[1].last, 6434u);
  ASSERT_EQ(v->normalised.size(), 1u);
  EXPECT_EQ(v->normalised[0], "10.1.2.3/8 -> 10.0.0.0/8");
  EXPECT_EQ(v->peers_v4.size(), 1u);  // 10.0.0.2-10.0.0.3 merged
}

TEST(ValidateFirewallTest, GenerationMustIncrease) {
  EXPECT_THAT(ValidateFirewall(Base(), 5), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ValidateFirewall(Base(), 9), StatusIs(StatusCode::kFailedPrecondition));
}

TEST(ValidateFirewallTest, OpenMustBeSignedAsOpen) {
  for (const char* everything : {"0.0.0.0/0", "::/0", "1.2.3.4/0"}) {
    FirewallSpec f = Base();
    f.services[0].allowed_cidrs = {everything};
    EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument)) << everything;
  }
  FirewallSpec f = Base();
  f.services[0].allowed_cidrs.clear();
  f.services[0].allow_all = true;
  EXPECT_THAT(ValidateFirewall(f, 0), IsOk());
  f.services[0].allowed_cidrs = {"1.2.3.4"};
  EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ValidateFirewallTest, MalformedInputIsRefused) {
  for (const char* bad : {"10.0.0.0/33", "300.1.1.1", "::ffff:10.0.0.1", "10.0.0.0/", "x"}) {
    FirewallSpec f = Base();
    f.services[0].allowed_cidrs = {bad};
    EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument)) << bad;
    f = Base();
    f.internal_peers = {bad};
    EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
  for (PortRange p : {PortRange{0, 0}, PortRange{65536, 65536}, PortRange{10, 5},
                      PortRange{1, 70000}}) {
    FirewallSpec f = Base();
    f.services[0].ports = {p};
    EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument));
  }
  FirewallSpec f = Base();
  f.services[0].ports.clear();
  EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument));
  f = Base();
  f.services.push_back(f.services[0]);
  EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument));
  for (const char* name : {"", "PG", "-pg", "pg/x", "a-service-name-beyond-24c"}) {
    f = Base();
    f.services[0].name = name;
    EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument)) << name;
  }
}

TEST(ValidateFirewallTest, PrivateOnlyRefusesPublicSources) {
  FirewallSpec f = Base();
  f.private_only = true;
  EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument));
  f.services[0].allowed_cidrs = {"10.20.0.0/16", "fd12:3456::/48"};
  EXPECT_THAT(ValidateFirewall(f, 0), IsOk());
  f.internal_peers.push_back("8.8.8.8");
  EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument));
  f.internal_peers.pop_back();
  f.services[0].allowed_cidrs.clear();
  f.services[0].allow_all = true;
  EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ValidateFirewallTest, ElementCap) {
  FirewallSpec f = Base();
  ValidationLimits limits;
  limits.max_elements = 3;
  EXPECT_THAT(ValidateFirewall(f, 0, limits), StatusIs(StatusCode::kResourceExhausted));
  limits.max_elements = 4;
  EXPECT_THAT(ValidateFirewall(f, 0, limits), IsOk());
}

std::string Packed4(uint32_t addr, int prefix) {
  std::string r(1, static_cast<char>(prefix));
  for (int i = 3; i >= 0; --i) r.push_back(static_cast<char>((addr >> (8 * i)) & 0xff));
  return r;
}
std::string Packed6(uint64_t hi, uint64_t lo, int prefix) {
  std::string r(1, static_cast<char>(64 + prefix));
  for (int i = 7; i >= 0; --i) r.push_back(static_cast<char>((hi >> (8 * i)) & 0xff));
  for (int i = 7; i >= 0; --i) r.push_back(static_cast<char>((lo >> (8 * i)) & 0xff));
  return r;
}

// The packed form gives exactly what the text form gives, with the same
// refusals.
TEST(ValidateFirewallTest, PackedCidrsMatchTheTextForm) {
  FirewallSpec text = Base();
  text.services[0].allowed_cidrs = {"192.168.1.15/32", "10.1.2.3/8", "2001:db8::/48",
                                    "2001:db8:1::1/128"};
  const std::string packed = Packed4(0xc0a8010f, 32) + Packed4(0x0a010203, 8) +
                             Packed6(0x20010db800000000ull, 0, 48) +
                             Packed6(0x20010db800010000ull, 1, 128);
  FirewallSpec bin = Base();
  bin.services[0].allowed_cidrs.clear();
  bin.services[0].allowed_packed = packed;
  auto a = ValidateFirewall(text, 0);
  auto b = ValidateFirewall(bin, 0);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->services[0].allowed_v4, b->services[0].allowed_v4);
  EXPECT_EQ(a->services[0].allowed_v6, b->services[0].allowed_v6);
  EXPECT_EQ(a->normalised, b->normalised);  // "10.1.2.3/8 -> 10.0.0.0/8" both ways

  for (const std::string& bad :
       {Packed4(0, 0), Packed4(0x01020304, 33), Packed6(0, 0x0000ffff0a000001ull, 128),
        Packed4(0x01020304, 32).substr(0, 3), Packed4(0x01020304, 40),
        Packed6(0x20010db800000000ull, 1, 129)}) {
    FirewallSpec f = Base();
    f.services[0].allowed_cidrs.clear();
    f.services[0].allowed_packed = bad;
    EXPECT_THAT(ValidateFirewall(f, 0), StatusIs(StatusCode::kInvalidArgument));
  }
  // The cap is checked before anything is parsed.
  FirewallSpec big = Base();
  std::string many;
  for (uint32_t i = 0; i < 100; ++i) many += Packed4(0x0b000000 + i * 2, 32);
  big.services[0].allowed_packed = many;
  ValidationLimits limits;
  limits.max_elements = 50;
  EXPECT_THAT(ValidateFirewall(big, 0, limits), StatusIs(StatusCode::kResourceExhausted));
}

}  // namespace
}  // namespace nodeward::firewall
