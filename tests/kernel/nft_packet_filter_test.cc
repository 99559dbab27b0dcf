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
#include "agent/firewall/ruleset_builder.h"
#include "platform/filter_plan.h"
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

  static FilterRuleset Ruleset(std::vector<FilterInterval> allowed) {
    FilterRuleset r;
    r.sets.push_back({"svc_pg_v4", false, std::move(allowed), {}});
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
    pg.ports = FilterPortRange{5432, 5432};
    pg.comment = "service pg";
    r.rules = {lo, est, pg};
    return r;
  }

  // Read, plan, commit: what the reconciler does, once.
  absl::Status Sync(NftPacketFilter* f, const FilterRuleset& desired, FilterChange* done = nullptr) {
    absl::Status s;
    InNetns(a_, [&] {
      absl::StatusOr<KernelTable> t = f->Read();
      if (!t.ok()) {
        s = t.status();
        return;
      }
      FilterChange c = PlanChange(*t, desired);
      if (done != nullptr) *done = c;
      s = f->Commit(c, t->genid).status();
    });
    return s;
  }
  absl::Status Apply(NftPacketFilter* f, std::vector<FilterInterval> allowed) {
    return Sync(f, Ruleset(std::move(allowed)));
  }
  absl::StatusOr<KernelTable> ReadBack(NftPacketFilter* f) {
    absl::StatusOr<KernelTable> t = absl::UnknownError("not run");
    InNetns(a_, [&] { t = f->Read(); });
    return t;
  }
  bool Exists(NftPacketFilter* f) {
    absl::StatusOr<KernelTable> t = ReadBack(f);
    return t.ok() && t->exists;
  }
  std::string Nft(const std::string& args) {
    std::string out;
    Sh(absl::StrCat("ip netns exec ", a_, " nft ", args), &out);
    return out;
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
  EXPECT_TRUE(Exists(&f));
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
  InNetns(a_, [&] {
    s1 = f.DeleteTable();
    s2 = f.DeleteTable();
  });
  EXPECT_THAT(s1, IsOk());
  EXPECT_THAT(s2, IsOk());
  EXPECT_FALSE(Exists(&f));
  int fd = Connect("10.99.0.3");
  EXPECT_GE(fd, 0);
  if (fd >= 0) close(fd);
}

TEST_F(NftKernelTest, InvalidRulesetChangesNothing) {
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  std::string before, after;
  Sh(absl::StrCat("ip netns exec ", a_, " nft list table inet nodeward"), &before);
  // A rule naming a set that does not exist: the kernel refuses the whole
  // batch, including the element add before it.
  FilterChange bad;
  bad.add_elements.push_back({"svc_pg_v4", false, {Host("10.99.0.3")}, {}});
  FilterRule r;
  r.kind = FilterRule::Kind::kSource;
  r.source_set = "missing";
  bad.base_rules = std::vector<FilterRule>{r};
  absl::Status s;
  InNetns(a_, [&] {
    absl::StatusOr<KernelTable> t = f.Read();
    ASSERT_TRUE(t.ok());
    s = f.Commit(bad, t->genid).status();
  });
  EXPECT_FALSE(s.ok());
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

// What the agent writes, it reads back exactly: the plan against the
// read-back is empty, for plain sets, sharded verdict maps, IPv6, ICMP and
// port ranges alike.
TEST_F(NftKernelTest, ReadBackMatchesWhatWasWritten) {
  firewall::ValidatedFirewall v;
  v.generation = 1;
  firewall::Service svc;
  svc.name = "pg";
  svc.ports = {{5432, 5432}, {6432, 6440}};
  for (uint32_t i = 0; i < 3000; ++i) {
    absl::uint128 a = (uint32_t{172} << 24) | (uint32_t{16} << 16) | (i * 4);
    svc.allowed_v4.push_back({a, a + 1});
  }
  svc.allowed_v6.push_back({absl::MakeUint128(0x20010db800000000ull, 0), absl::MakeUint128(0x20010db800000000ull, ~0ull)});
  v.services.push_back(svc);
  v.peers_v4.push_back({Host("10.99.0.2").first, Host("10.99.0.2").first});
  firewall::ManagementAccess m{{firewall::ParseCidr("10.99.0.0/24").value()}, {22}};
  const FilterRuleset want = firewall::BuildRuleset(m, &v, 256);
  ASSERT_GT(want.chains.size(), 8u) << "the list must be sharded";
  NftPacketFilter f;
  ASSERT_THAT(Sync(&f, want), IsOk());
  absl::StatusOr<KernelTable> t = ReadBack(&f);
  ASSERT_THAT(t, IsOk());
  EXPECT_TRUE(t->structure_ok);
  FilterChange again = PlanChange(*t, want);
  EXPECT_TRUE(again.empty()) << Describe(again);
  int ok = Connect("10.99.0.2");
  EXPECT_GE(ok, 0);
  if (ok >= 0) close(ok);
  EXPECT_LT(Connect("10.99.0.3"), 0);
}

// One more source: the transaction holds only that element, in one shard.
TEST_F(NftKernelTest, IncrementalChangeTouchesOnlyTheChangedShard) {
  firewall::ValidatedFirewall v;
  firewall::Service svc;
  svc.name = "pg";
  svc.ports = {{5432, 5432}};
  for (uint32_t i = 0; i < 5000; ++i) {
    absl::uint128 a = (uint32_t{172} << 24) | (uint32_t{16} << 16) | (i * 4);
    svc.allowed_v4.push_back({a, a});
  }
  v.services.push_back(svc);
  firewall::ManagementAccess m{{firewall::ParseCidr("192.0.2.0/24").value()}, {22}};
  NftPacketFilter f;
  ASSERT_THAT(Sync(&f, firewall::BuildRuleset(m, &v)), IsOk());
  EXPECT_LT(Connect("10.99.0.3"), 0);
  v.services[0].allowed_v4.insert(v.services[0].allowed_v4.begin(),
                                  {Host("10.99.0.3").first, Host("10.99.0.3").first});
  FilterChange c;
  ASSERT_THAT(Sync(&f, firewall::BuildRuleset(m, &v), &c), IsOk());
  EXPECT_FALSE(c.replace_table);
  EXPECT_FALSE(c.base_rules.has_value());
  ASSERT_EQ(c.add_elements.size(), 1u) << Describe(c);
  EXPECT_EQ(c.add_elements[0].intervals.size(), 1u);
  EXPECT_TRUE(c.delete_elements.empty());
  int fd = Connect("10.99.0.3");
  EXPECT_GE(fd, 0);
  if (fd >= 0) close(fd);
}

// Another writer between read and commit: the generation guard refuses the
// batch and nothing of it lands.
TEST_F(NftKernelTest, GenerationConflictIsRefusedWhole) {
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  absl::StatusOr<KernelTable> t = ReadBack(&f);
  ASSERT_THAT(t, IsOk());
  ASSERT_EQ(Nft("add table inet other").find("Error"), std::string::npos);
  FilterChange c = PlanChange(*t, Ruleset({Host("10.99.0.3")}));
  absl::Status s;
  InNetns(a_, [&] { s = f.Commit(c, t->genid).status(); });
  EXPECT_THAT(s, testing::StatusIs(absl::StatusCode::kAborted));
  EXPECT_NE(Nft("list set inet nodeward svc_pg_v4").find("10.99.0.2"), std::string::npos);
}

int OpenSockets() {
  int n = 0;
  std::string out;
  Sh("ls -l /proc/" + std::to_string(getpid()) + "/fd 2>/dev/null | grep -c 'socket:' || true", &out);
  n = std::atoi(out.c_str());
  return n;
}

// One request socket for the filter's life (closing one makes the kernel wait
// for the release of what earlier commits removed, which is what made every
// removal cost 5-30 ms), following the caller's namespace, and replaced after
// a refused commit so no stale ack is read as the next commit's.
TEST_F(NftKernelTest, KeepsOneRequestSocketAndFollowsTheCallersNamespace) {
  const int before = OpenSockets();
  {
    NftPacketFilter f;
    for (int i = 0; i < 3; ++i) {
      ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
      ASSERT_THAT(Apply(&f, {Host("10.99.0.3")}), IsOk());  // a removal each time
    }
    EXPECT_EQ(OpenSockets(), before + 1);
    // The client namespace has no table; the server's is still there.
    absl::StatusOr<KernelTable> other = absl::UnknownError("not run");
    InNetns(net_.client, [&] { other = f.Read(); });
    ASSERT_THAT(other, IsOk());
    EXPECT_FALSE(other->exists);
    EXPECT_TRUE(Exists(&f));
    EXPECT_EQ(OpenSockets(), before + 1);
    // A refused commit (stale generation), then normal work on a new socket.
    absl::StatusOr<KernelTable> t = ReadBack(&f);
    ASSERT_THAT(t, IsOk());
    ASSERT_EQ(Nft("add table inet other2").find("Error"), std::string::npos);
    absl::Status s;
    FilterChange c = PlanChange(*t, Ruleset({Host("10.99.0.2")}));
    InNetns(a_, [&] { s = f.Commit(c, t->genid).status(); });
    EXPECT_THAT(s, testing::StatusIs(absl::StatusCode::kAborted));
    ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
    EXPECT_NE(Nft("list set inet nodeward svc_pg_v4").find("10.99.0.2"), std::string::npos);
    EXPECT_EQ(Nft("list set inet nodeward svc_pg_v4").find("10.99.0.3"), std::string::npos);
    EXPECT_EQ(OpenSockets(), before + 1);
  }
  EXPECT_EQ(OpenSockets(), before);
}

// The monitor names who changed the table, and tells other tables apart.
TEST_F(NftKernelTest, WatchReportsForeignChanges) {
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  std::unique_ptr<FilterWatch> w;
  InNetns(a_, [&] { w = f.Watch().value(); });
  ASSERT_NE(w, nullptr);
  Nft("add table inet elsewhere");
  Nft("add element inet nodeward svc_pg_v4 { 10.99.0.3 }");
  std::vector<FilterEvent> all;
  for (int i = 0; i < 20 && all.size() < 2; ++i) {
    auto e = w->Wait(absl::Milliseconds(100));
    ASSERT_THAT(e, IsOk());
    all.insert(all.end(), e->begin(), e->end());
  }
  ASSERT_EQ(all.size(), 2u);
  EXPECT_FALSE(all[0].touched_table);
  EXPECT_TRUE(all[1].touched_table);
  EXPECT_FALSE(all[1].own);
  EXPECT_EQ(all[1].process, "nft");
  EXPECT_NE(all[1].what.find("elements added"), std::string::npos) << all[1].what;
  // And the read-back sees the extra element, so a plan removes it.
  absl::StatusOr<KernelTable> t = ReadBack(&f);
  ASSERT_THAT(t, IsOk());
  FilterChange c = PlanChange(*t, Ruleset({Host("10.99.0.2")}));
  ASSERT_EQ(c.delete_elements.size(), 1u) << Describe(c);
}

// A foreign rule in our chain reads back as foreign and is planned away.
TEST_F(NftKernelTest, ForeignRuleIsSeenAndRemoved) {
  NftPacketFilter f;
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  Nft("insert rule inet nodeward input ip saddr 10.99.0.3 accept");
  EXPECT_GE(Connect("10.99.0.3"), 0);
  absl::StatusOr<KernelTable> t = ReadBack(&f);
  ASSERT_THAT(t, IsOk());
  ASSERT_FALSE(t->ruleset.rules.empty());
  EXPECT_EQ(t->ruleset.rules[0].kind, FilterRule::Kind::kForeign);
  ASSERT_THAT(Apply(&f, {Host("10.99.0.2")}), IsOk());
  EXPECT_LT(Connect("10.99.0.3"), 0);
  EXPECT_EQ(Nft("list chain inet nodeward input").find("10.99.0.3"), std::string::npos);
}

}  // namespace
}  // namespace nodeward::platform
