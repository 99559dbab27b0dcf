// Kernel tier: NftPacketFilter against real nftables, in two network
// namespaces this test creates and deletes (veth between them; one server
// address, two client addresses). Needs root: fails, never skips, without it.
#include "platform/linux/nft_packet_filter_linux.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::IsOk;

int Sh(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  int rc = pclose(p);
  if (out != nullptr) *out = text;
  return rc;
}

// Runs `fn` on a thread that has entered network namespace `ns`. Sockets
// made there stay in that namespace.
void InNetns(const std::string& ns, const std::function<void()>& fn) {
  std::thread t([&] {
    int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << ns;
    ASSERT_EQ(setns(fd, CLONE_NEWNET), 0) << ns;
    close(fd);
    fn();
  });
  t.join();
}

sockaddr_in Addr(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

class NftKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the kernel tier needs root (CI runs as root)";
    a_ = absl::StrCat("nwk", getpid(), "a");
    b_ = absl::StrCat("nwk", getpid(), "b");
    std::string out;
    ASSERT_EQ(Sh(absl::StrCat("ip netns add ", a_, " && ip netns add ", b_, " && ip link add va",
                              " netns ", a_, " type veth peer name vb netns ", b_,
                              " && ip -n ", a_, " addr add 10.99.0.1/24 dev va",
                              " && ip -n ", b_, " addr add 10.99.0.2/24 dev vb",
                              " && ip -n ", b_, " addr add 10.99.0.3/24 dev vb",
                              " && ip -n ", a_, " link set va up && ip -n ", a_, " link set lo up",
                              " && ip -n ", b_, " link set vb up && ip -n ", b_, " link set lo up"),
                 &out),
              0)
        << out;
    InNetns(a_, [&] {
      listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in a = Addr("10.99.0.1", 5432);
      ASSERT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      ASSERT_EQ(listen(listen_fd_, 64), 0);
    });
  }
  void TearDown() override {
    if (listen_fd_ >= 0) close(listen_fd_);
    Sh(absl::StrCat("ip netns delete ", a_, "; ip netns delete ", b_));
  }

  // A TCP connect from `source` in B to the server in A; -1 if it did not
  // complete within the wait (the SYN was dropped).
  int Connect(const char* source) {
    int fd = -1;
    InNetns(b_, [&] {
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      sockaddr_in src = Addr(source, 0);
      bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src));
    });
    sockaddr_in dst = Addr("10.99.0.1", 5432);
    connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst));
    pollfd p{fd, POLLOUT, 0};
    int err = -1;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, 700) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close(fd);
      return -1;
    }
    return fd;
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

  std::string a_, b_;
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
