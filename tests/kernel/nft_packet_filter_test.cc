// Kernel tier: NftPacketFilter against real nftables, in two network
// namespaces this test creates and deletes (veth between them; one server
// address, two client addresses). Needs root: fails, never skips, without it.
#include "platform/linux/nft_packet_filter_linux.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/netns.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::IsOk;

using testing::InNetns;
using testing::NetnsPair;
using testing::Sh;

class NftKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the kernel tier needs root (CI runs as root)";
    ASSERT_TRUE(net_.ok) << net_.setup_output;
    a_ = net_.server;
    listen_fd_ = net_.Listen(5432);
    ASSERT_GE(listen_fd_, 0);
  }
  void TearDown() override {
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  // host 2 = 10.99.0.2, host 3 = 10.99.0.3, in the client namespace.
  int Connect(const std::string& source) {
    return net_.Connect(std::stoi(source.substr(source.rfind('.') + 1)), 5432);
  }

  absl::Status Apply(NftPacketFilter* f, std::vector<FilterInterval> allowed) {
    FilterRuleset r;
    r.sets.push_back({"svc_pg_v4", false, std::move(allowed)});
    FilterRule lo;
    lo.kind = FilterRule::Kind::kLoopback;
    lo.comment = "loopback";
    FilterRule est;
    est.kind = FilterRule::Kind::kEstablished;
    est.comment = "replies and established connections";
    FilterRule pg;
    pg.kind = FilterRule::Kind::kSource;
    pg.source_set = "svc_pg_v4";
    pg.protocol = FilterRule::Protocol::kTcp;
    pg.ports = {{5432, 5432}};
    pg.comment = "service pg";
    r.rules = {lo, est, pg};
    absl::Status s;
    InNetns(a_, [&] { s = f->ReplaceTable(r); });
    return s;
  }

  static FilterInterval Host(const char* ip) {
    in_addr a;
    inet_pton(AF_INET, ip, &a);
    absl::uint128 v = ntohl(a.s_addr);
    return {v, v};
  }

  NetnsPair net_{"k", 99};
  std::string a_;
  int listen_fd_ = -1;
};

TEST_F(NftKernelTest, AllowListAndDefaultDrop) {
  int before = Connect("10.99.0.3");
  ASSERT_GE(before, 0) << "no filter yet: everything connects";
  close(before);
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  bool exists = false;
  InNetns(a_, [&] { exists = f.TableExists().value_or(false); });
  EXPECT_TRUE(exists);
  int ok = Connect("10.99.0.2");
  EXPECT_GE(ok, 0);
  if (ok >= 0) close(ok);
  EXPECT_LT(Connect("10.99.0.3"), 0);
  std::string out;
  Sh(absl::StrCat("ip netns exec ", a_, " nft list table inet nodeward"), &out);
  EXPECT_NE(out.find("policy drop"), std::string::npos) << out;
  EXPECT_NE(out.find("ip saddr @svc_pg_v4 tcp dport 5432 accept"), std::string::npos) << out;
  EXPECT_NE(out.find("comment \"service pg\""), std::string::npos) << out;
}

TEST_F(NftKernelTest, UpdateSwitchesSourcesAndKeepsEstablishedConnections) {
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  int kept = Connect("10.99.0.2");
  ASSERT_GE(kept, 0);
  int server_side = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server_side, 0);
  // Only .3 allowed now: new connections from .2 are dropped, .3 connects,
  // and the connection .2 already had keeps working.
  ASSERT_THAT(Apply(&f, {Host("10.99.0.3")}), IsOk());
  EXPECT_LT(Connect("10.99.0.2"), 0);
  int now_ok = Connect("10.99.0.3");
  EXPECT_GE(now_ok, 0);
  if (now_ok >= 0) close(now_ok);
  ASSERT_EQ(send(kept, "ping", 4, MSG_NOSIGNAL), 4);
  pollfd p{server_side, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  char buf[8];
  EXPECT_EQ(recv(server_side, buf, sizeof(buf), 0), 4);
  close(kept);
  close(server_side);
}

TEST_F(NftKernelTest, ForeignTablesAreLeftExactlyAsTheyWere) {
  std::string before, after;
  ASSERT_EQ(Sh(absl::StrCat("ip netns exec ", a_, " nft add table inet foreign && ip netns exec ",
                            a_, " nft add chain inet foreign c && ip netns exec ", a_,
                            " nft add rule inet foreign c tcp dport 22 counter")),
            0);
  Sh(absl::StrCat("ip netns exec ", a_, " nft list table inet foreign"), &before);
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  ASSERT_THAT(Apply(&f, {Host("10.99.0.3")}), IsOk());
  absl::Status del;
  InNetns(a_, [&] { del = f.DeleteTable(); });
  ASSERT_THAT(del, IsOk());
  Sh(absl::StrCat("ip netns exec ", a_, " nft list table inet foreign"), &after);
  EXPECT_EQ(before, after);
}

TEST_F(NftKernelTest, DeleteIsIdempotentAndOpensTheHostAgain) {
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  absl::Status s1, s2;
  bool exists = true;
  InNetns(a_, [&] {
    s1 = f.DeleteTable();
    s2 = f.DeleteTable();
    exists = f.TableExists().value_or(true);
  });
  EXPECT_THAT(s1, IsOk());
  EXPECT_THAT(s2, IsOk());
  EXPECT_FALSE(exists);
  int fd = Connect("10.99.0.3");
  EXPECT_GE(fd, 0);
  if (fd >= 0) close(fd);
}

TEST_F(NftKernelTest, InvalidRulesetChangesNothing) {
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  std::string before, after;
  Sh(absl::StrCat("ip netns exec ", a_, " nft list table inet nodeward"), &before);
  FilterRuleset bad;
  FilterRule r;
  r.kind = FilterRule::Kind::kSource;
  r.source_set = "missing";
  bad.rules.push_back(r);
  absl::Status s;
  InNetns(a_, [&] { s = f.ReplaceTable(bad); });
  EXPECT_THAT(s, testing::StatusIs(absl::StatusCode::kInvalidArgument));
  Sh(absl::StrCat("ip netns exec ", a_, " nft list table inet nodeward"), &after);
  EXPECT_EQ(before, after);
}

TEST_F(NftKernelTest, LargeAllowListInOneTransaction) {
  std::vector<FilterInterval> many;
  for (uint32_t i = 0; i < 20000; ++i) {
    absl::uint128 v = (uint32_t{172} << 24) | (uint32_t{16} << 16) | (i * 2);
    many.push_back({v, v});
  }
  many.push_back(Host("10.99.0.2"));
  std::sort(many.begin(), many.end(),
            [](const FilterInterval& a, const FilterInterval& b) { return a.first < b.first; });
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, many), IsOk());
  int ok = Connect("10.99.0.2");
  EXPECT_GE(ok, 0);
  if (ok >= 0) close(ok);
  EXPECT_LT(Connect("10.99.0.3"), 0);
  std::string out;
  Sh(absl::StrCat("ip netns exec ", a_, " nft list set inet nodeward svc_pg_v4 | grep -o '172\\.' | wc -l"),
     &out);
  EXPECT_EQ(std::stoi(out), 20000);
}

}  // namespace
}  // namespace nodeward::platform
