// Kernel tier: no connection the desired state forbids survives a repair
// (Hardening II point 13). The reconciler with the real NftPacketFilter and
// LinuxConntrack runs in a network namespace this test makes; a second
// namespace on a veth has an allowed source (.2) and one never allowed (.3).
// The whole ruleset is flushed; while the table is missing .3 opens
// connections to the protected port; the agent re-creates the table from
// the deletion event. Afterwards .3's connections are gone from conntrack,
// carry no more data, and reconnects from the same 4-tuples are refused,
// while .2's connection keeps working. Needs root: fails, never skips.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/firewall/firewall_reconciler.h"
#include "gtest/gtest.h"
#include "platform/linux/conntrack_linux.h"
#include "platform/linux/nft_packet_filter_linux.h"
#include "tests/common/netns.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_file_system.h"

namespace nodeward::firewall {
namespace {

using testing::InNetns;
using testing::IsOk;
using testing::NetnsPair;
using testing::Sh;

constexpr uint16_t kPort = 5432;

class ConntrackCutKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the kernel tier needs root (CI runs as root)";
    ASSERT_TRUE(net_.ok) << net_.setup_output;
    listen_fd_ = net_.Listen(kPort);
    ASSERT_GE(listen_fd_, 0);
    fcntl(listen_fd_, F_SETFL, O_NONBLOCK);
    // NODEWARD_NO_CUT=1 runs without the cut, as fcf3c42 behaved: the
    // foreign-rule and deleted-table tests then fail (data still flows).
    if (getenv("NODEWARD_NO_CUT") == nullptr) rec_.set_conntrack(&conntrack_);
    VerifiedCommand v;
    auto* a = v.command.mutable_apply_firewall();
    a->set_generation(1);
    auto* s = a->add_services();
    s->set_name("pg");
    s->set_protocol(nodeward::v1::PROTOCOL_TCP);
    s->add_ports()->set_first(kPort);
    s->add_allowed_cidrs(net_.Ip(2) + "/32");
    v.command_type = "apply_firewall";
    absl::Status st;
    InNetns(net_.server, [&] {
      st = rec_.Restore();
      if (st.ok()) st = rec_.Apply(v).status();
    });
    ASSERT_THAT(st, IsOk());
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  // A connection from client address `host`, source port `sport`; the
  // client fd (and the server's accepted fd in *server), or -1 on timeout.
  int ConnectFrom(int host, uint16_t sport, int* server, int wait_ms = 700) {
    const int fd = net_.Connect(host, kPort, wait_ms, sport);
    if (fd < 0) return -1;
    pollfd l{listen_fd_, POLLIN, 0};
    *server = poll(&l, 1, 1000) == 1 ? accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC) : -1;
    fds_.push_back(fd);
    if (*server >= 0) fds_.push_back(*server);
    return fd;
  }
  // Whether a byte written on `client` arrives at `server` within `ms`.
  static bool Carries(int client, int server, int ms) {
    if (send(client, "x", 1, MSG_NOSIGNAL) != 1) return false;
    pollfd p{server, POLLIN, 0};
    char c;
    return poll(&p, 1, ms) == 1 && recv(server, &c, 1, MSG_DONTWAIT) == 1;
  }
  size_t TrackedFrom(int host) {
    size_t n = 0;
    InNetns(net_.server, [&] {
      auto all = conntrack_.List();
      ASSERT_TRUE(all.ok()) << all.status();
      in_addr a;
      inet_pton(AF_INET, net_.Ip(host).c_str(), &a);
      for (const auto& e : *all) {
        if (e.inbound && e.src == ntohl(a.s_addr) && e.dport == kPort) ++n;
      }
    });
    return n;
  }

  NetnsPair net_{"t", 97};
  int listen_fd_ = -1;
  std::vector<int> fds_;
  platform::NftPacketFilter filter_;
  platform::LinuxConntrack conntrack_;
  platform::FakeFileSystem fs_;
  platform::FakeClock clock_;
  FirewallReconciler rec_{&filter_, &fs_, &clock_, "/state/firewall.pb",
                          {{ParseCidr("192.0.2.0/24").value()}, {7443}}};

  // Runs `drift` (nft arguments) in the agent's namespace; while it is in
  // effect the forbidden source .3 opens kInFlight connections and sends a
  // byte on each; then the agent repairs from the netlink events. Returns
  // how many of .3's connections the kernel tracked before the repair.
  static constexpr int kInFlight = 20;
  size_t DriftAndRepair(const std::string& drift) {
    int allowed_srv = -1;
    allowed_ = ConnectFrom(2, 41000, &allowed_srv);
    allowed_srv_ = allowed_srv;
    EXPECT_GE(allowed_, 0);
    EXPECT_GE(allowed_srv_, 0);
    int probe_srv = -1;
    EXPECT_LT(ConnectFrom(3, 41999, &probe_srv, 300), 0) << ".3 is not allowed before the drift";
    std::unique_ptr<platform::FilterWatch> watch;
    InNetns(net_.server, [&] { watch = filter_.Watch().value(); });
    std::string out;
    EXPECT_EQ(Sh(absl::StrCat("ip netns exec ", net_.server, " nft ", drift), &out), 0) << out;
    for (int i = 0; i < kInFlight; ++i) {
      int srv = -1;
      const int c = ConnectFrom(3, static_cast<uint16_t>(42000 + i), &srv);
      EXPECT_GE(c, 0) << "while drifted, .3 connects";
      EXPECT_GE(srv, 0);
      if (c < 0 || srv < 0) continue;
      EXPECT_TRUE(Carries(c, srv, 1000));
      forbidden_.emplace_back(c, srv);
    }
    const size_t tracked = TrackedFrom(3);
    absl::Status repaired;
    double ms = 0;
    InNetns(net_.server, [&] {
      auto events = watch->Wait(absl::Seconds(2));
      ASSERT_TRUE(events.ok()) << events.status();
      const auto t0 = std::chrono::steady_clock::now();
      repaired = rec_.OnEvents(*events);
      ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
               .count();
    });
    EXPECT_THAT(repaired, IsOk());
    std::printf("%s: %zu of .3's connections tracked; repair took %.1f ms, cut %lu\n",
                drift.c_str(), tracked, ms,
                static_cast<unsigned long>(rec_.status().connections_cut));
    EXPECT_EQ(rec_.status().drift_repairs, 1u);
    std::printf("  %s\n", rec_.status().last_drift.c_str());
    return tracked;
  }
  // After the repair: nothing of .3's is tracked, its connections carry no
  // more data, the same 4-tuples cannot reconnect; .2's connection works.
  void ExpectNothingForbiddenSurvives() {
    EXPECT_EQ(TrackedFrom(3), 0u);
    // A byte on every connection, then one wait for any of them to arrive.
    std::vector<pollfd> servers;
    for (auto [c, srv] : forbidden_) {
      send(c, "y", 1, MSG_NOSIGNAL);
      servers.push_back(pollfd{srv, POLLIN, 0});
    }
    usleep(500 * 1000);  // retransmissions included
    const int carried = poll(servers.data(), servers.size(), 0);
    EXPECT_EQ(carried, 0) << "connections from a forbidden source still carry data";
    EXPECT_TRUE(Carries(allowed_, allowed_srv_, 1000)) << "the allowed connection was cut";
    for (auto& [c, srv] : forbidden_) {
      linger l{1, 0};  // RST, no TIME_WAIT: the source port is free at once
      setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      close(c);
      fds_.erase(std::remove(fds_.begin(), fds_.end(), c), fds_.end());
    }
    // Every 4-tuple again at once; none may complete (SYNs dropped).
    std::vector<pollfd> again;
    InNetns(net_.client, [&] {
      for (int i = 0; i < kInFlight; ++i) {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in src = testing::Ipv4(net_.Ip(3).c_str(), static_cast<uint16_t>(42000 + i));
        EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)), 0) << strerror(errno);
        sockaddr_in dst = testing::Ipv4(net_.Ip(1).c_str(), kPort);
        connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst));
        again.push_back(pollfd{fd, POLLOUT, 0});
        fds_.push_back(fd);
      }
    });
    usleep(1500 * 1000);  // the first SYN retransmission is at 1 s
    int reconnected = 0;
    for (const pollfd& p : again) {
      int err = -1;
      socklen_t len = sizeof(err);
      getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      pollfd q{p.fd, POLLOUT, 0};
      if (poll(&q, 1, 0) == 1 && err == 0) ++reconnected;
    }
    EXPECT_EQ(reconnected, 0) << "reconnects from the same 4-tuples got in";
    EXPECT_EQ(TrackedFrom(2), 1u);
  }
  int allowed_ = -1, allowed_srv_ = -1;
  std::vector<std::pair<int, int>> forbidden_;
};

// A foreign accept rule at the top of the agent's own table: conntrack keeps
// tracking (the table's own ct rule), so .3's connections are ESTABLISHED
// and ASSURED when the rule is removed, and `ct state established accept`
// would keep letting them in.
TEST_F(ConntrackCutKernelTest, AForeignAcceptRuleLeavesNothingBehind) {
  EXPECT_EQ(DriftAndRepair("insert rule inet nodeward input accept"),
            static_cast<size_t>(kInFlight));
  EXPECT_EQ(rec_.status().connections_cut, static_cast<uint64_t>(kInFlight));
  ExpectNothingForbiddenSurvives();
}

// The agent's table deleted while another table still uses conntrack (NAT,
// a container runtime): the table is re-created from the deletion event,
// without a read-back, and what got in meanwhile is cut.
TEST_F(ConntrackCutKernelTest, ADeletedTableLeavesNothingBehind) {
  std::string out;
  ASSERT_EQ(Sh(absl::StrCat("ip netns exec ", net_.server,
                            " nft 'add table ip other; add chain ip other pre "
                            "{ type filter hook prerouting priority -200; }; "
                            "add rule ip other pre ct state new counter'"),
               &out),
            0)
      << out;
  EXPECT_EQ(DriftAndRepair("delete table inet nodeward"), static_cast<size_t>(kInFlight));
  EXPECT_EQ(rec_.status().connections_cut, static_cast<uint64_t>(kInFlight));
  ExpectNothingForbiddenSurvives();
}

// `nft flush ruleset` with nothing else using conntrack: the kernel stops
// tracking in the window, and once the table is back the next packet of
// each connection that got in is a mid-stream pickup, `ct state new`, which
// meets the allow-list and is dropped. Nothing to cut, nothing survives.
TEST_F(ConntrackCutKernelTest, AFlushedRulesetLeavesNothingBehind) {
  DriftAndRepair("flush ruleset");
  ExpectNothingForbiddenSurvives();
}

TEST_F(ConntrackCutKernelTest, ConnectionsTheKernelTracksForTheVmItselfAreNeverInbound) {
  // The VM (server namespace) connects out to the client: tracked, but not inbound.
  int peer = -1;
  InNetns(net_.client, [&] {
    peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(peer, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a = testing::Ipv4(net_.Ip(3).c_str(), 443);
    ASSERT_EQ(bind(peer, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(listen(peer, 4), 0);
  });
  int out = -1;
  InNetns(net_.server, [&] {
    out = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = testing::Ipv4(net_.Ip(3).c_str(), 443);
    ASSERT_EQ(connect(out, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  });
  bool seen = false, inbound = true;
  InNetns(net_.server, [&] {
    absl::StatusOr<std::vector<platform::ConnEntry>> all = conntrack_.List();
    ASSERT_TRUE(all.ok()) << all.status();
    for (const auto& e : *all) {
      if (e.dport == 443) {
        seen = true;
        inbound = e.inbound;
      }
    }
  });
  EXPECT_TRUE(seen);
  EXPECT_FALSE(inbound);
  close(out);
  close(peer);
}

}  // namespace
}  // namespace nodeward::firewall
