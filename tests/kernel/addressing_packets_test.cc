// Kernel tier: the ruleset never cuts the VM's own network configuration
// (Hardening II point 8, invariant 5). The agent's baseline ruleset is in
// one network namespace; a second namespace on a veth plays the DHCP
// server and the router and sends each packet the VM's addressing needs
// (DHCPv4 offer to broadcast and ack to unicast, DHCPv6 reply, neighbour
// discovery, MLD query and report). Each must be delivered; the IPv6 ones
// from a global source must not be. Needs root: fails, never skips, without it.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/firewall/ruleset_builder.h"
#include "gtest/gtest.h"
#include "platform/filter_plan.h"
#include "platform/linux/nft_packet_filter_linux.h"
#include "tests/common/netns.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::InNetns;
using testing::IsOk;
using testing::NetnsPair;
using testing::Sh;

sockaddr_in6 Ipv6(const char* ip, uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return a;
}

// Whether `fd` has a datagram within `ms`; reads it.
bool Received(int fd, int ms = 1500, std::string* data = nullptr) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, ms) != 1) return false;
  char buf[2048];
  const ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (data != nullptr && n > 0) data->assign(buf, static_cast<size_t>(n));
  return n > 0;
}

class AddressingPacketsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the kernel tier needs root (CI runs as root)";
    ASSERT_TRUE(net_.ok) << net_.setup_output;
    std::string out;
    // Fixed link-local and global IPv6 addresses without DAD (usable at once).
    ASSERT_EQ(Sh(absl::StrCat("ip -n ", net_.server, " addr add fe80::1/64 dev va nodad && ",
                              "ip -n ", net_.server, " addr add 2001:db8::1/64 dev va nodad && ",
                              "ip -n ", net_.client, " addr add fe80::2/64 dev vb nodad && ",
                              "ip -n ", net_.client, " addr add 2001:db8::2/64 dev vb nodad"),
                 &out),
              0)
        << out;
    firewall::ManagementAccess m;
    m.cidrs.push_back(*firewall::ParseCidr("192.0.2.0/24"));
    m.tcp_ports = {7443, 22};
    const FilterRuleset desired = firewall::BuildRuleset(m, nullptr);
    absl::Status s;
    InNetns(net_.server, [&] {
      absl::StatusOr<KernelTable> t = filter_.Read();
      s = t.status();
      if (t.ok()) s = filter_.Commit(PlanChange(*t, desired), t->genid).status();
    });
    ASSERT_THAT(s, IsOk());
    // What was written reads back as the same rules (no endless drift).
    bool same = false;
    InNetns(net_.server, [&] {
      absl::StatusOr<KernelTable> t = filter_.Read();
      same = t.ok() && t->structure_ok && PlanChange(*t, desired).empty() &&
             t->ruleset.rules == desired.rules;
    });
    ASSERT_TRUE(same) << "the addressing rules do not read back as written";
    // The agent's table is in place and drops by default.
    Sh(absl::StrCat("ip netns exec ", net_.server, " nft list table inet nodeward"), &out);
    ASSERT_NE(out.find("policy drop"), std::string::npos) << out;
    table_text_ = out;
    if (getenv("NODEWARD_PRINT_TABLE") != nullptr) std::printf("%s", out.c_str());
  }

  // A UDP socket in `ns` bound to `addr`.
  template <typename Addr>
  int Udp(const std::string& ns, const Addr& addr, const char* dev = nullptr) {
    int fd = -1;
    InNetns(ns, [&] {
      fd = socket(reinterpret_cast<const sockaddr*>(&addr)->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
      if (dev != nullptr) setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, strlen(dev));
      Addr a = addr;
      Scope(&a, dev);
      if (bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
        ADD_FAILURE() << "bind in " << ns << ": " << strerror(errno);
      }
    });
    return fd;
  }
  // The interface index of `dev` in the calling thread's namespace, for a
  // link-local address.
  static void Scope(sockaddr_in6* a, const char* dev) {
    if (dev != nullptr) a->sin6_scope_id = if_nametoindex(dev);
  }
  static void Scope(sockaddr_in*, const char*) {}
  // A raw ICMPv6 socket in `ns` (bound to `src` if given) that passes only `type`.
  int Icmp6(const std::string& ns, uint8_t type, const char* src = nullptr) {
    int fd = -1;
    InNetns(ns, [&] {
      fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
      icmp6_filter f;
      ICMP6_FILTER_SETBLOCKALL(&f);
      ICMP6_FILTER_SETPASS(type, &f);
      setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
      if (src != nullptr) {
        sockaddr_in6 a = Ipv6(src, 0);
        Scope(&a, "vb");
        if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
          ADD_FAILURE() << "bind " << src << ": " << strerror(errno);
        }
        const unsigned ifindex = if_nametoindex("vb");
        int hops = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex));
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops));
      }
    });
    return fd;
  }
  // Sends an MLD message of `type` from `src` (client side) to ff02::1;
  // whether the server's raw socket saw it.
  bool MldDelivered(uint8_t type, const char* src) {
    const int rx = Icmp6(net_.server, type);
    const int tx = Icmp6(net_.client, type, src);
    // MLDv1 layout (24 bytes): type, code, checksum (the kernel fills it in),
    // max response delay, reserved, multicast address (:: = general query).
    unsigned char msg[24] = {type, 0, 0, 0, 0x03, 0xe8};
    sockaddr_in6 dst = Ipv6("ff02::1", 0);
    bool sent = false;
    InNetns(net_.client, [&] {
      Scope(&dst, "vb");
      sent = sendto(tx, msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) ==
             static_cast<ssize_t>(sizeof(msg));
    });
    EXPECT_TRUE(sent) << strerror(errno);
    std::string got;
    const bool seen = Received(rx, 1000, &got) && !got.empty() &&
                      static_cast<uint8_t>(got[0]) == type;
    close(rx);
    close(tx);
    return seen;
  }

  NetnsPair net_{"a", 98};
  NftPacketFilter filter_;
  std::string table_text_;
};

TEST_F(AddressingPacketsTest, DhcpV4OfferToBroadcastAndAckToUnicastAreDelivered) {
  const int client68 = Udp(net_.server, testing::Ipv4("0.0.0.0", 68), "va");
  const int server67 = Udp(net_.client, testing::Ipv4(net_.Ip(2).c_str(), 67), "vb");
  ASSERT_GE(client68, 0);
  ASSERT_GE(server67, 0);
  // The offer: the client has no address yet, so it goes to broadcast.
  sockaddr_in bcast = testing::Ipv4("255.255.255.255", 68);
  ASSERT_EQ(sendto(server67, "offer", 5, 0, reinterpret_cast<sockaddr*>(&bcast), sizeof(bcast)), 5);
  EXPECT_TRUE(Received(client68)) << "DHCPv4 offer to 255.255.255.255:68 dropped\n" << table_text_;
  // The ack of a renewal or a rebinding (whose request was a broadcast):
  // unicast to the leased address, matching no conntrack entry.
  sockaddr_in unicast = testing::Ipv4(net_.Ip(1).c_str(), 68);
  ASSERT_EQ(sendto(server67, "ack", 3, 0, reinterpret_cast<sockaddr*>(&unicast), sizeof(unicast)),
            3);
  EXPECT_TRUE(Received(client68)) << "DHCPv4 ack to the leased address dropped";
  // Only the reply direction: UDP from port 68 to 68 is still dropped.
  const int other = Udp(net_.client, testing::Ipv4(net_.Ip(3).c_str(), 68), "vb");
  ASSERT_EQ(sendto(other, "x", 1, 0, reinterpret_cast<sockaddr*>(&unicast), sizeof(unicast)), 1);
  EXPECT_FALSE(Received(client68, 500));
  close(other);
  close(client68);
  close(server67);
}

TEST_F(AddressingPacketsTest, DhcpV6ReplyIsDeliveredFromLinkLocalOnly) {
  const int client546 = Udp(net_.server, Ipv6("::", 546));
  ASSERT_GE(client546, 0);
  const int server547 = Udp(net_.client, Ipv6("fe80::2", 547), "vb");
  ASSERT_GE(server547, 0);
  // The reply to a Solicit/Request the client sent to ff02::1:2.
  sockaddr_in6 to = Ipv6("fe80::1", 546);
  int sent = -1;
  InNetns(net_.client, [&] {
    Scope(&to, "vb");
    sent = static_cast<int>(
        sendto(server547, "reply", 5, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)));
  });
  ASSERT_EQ(sent, 5) << strerror(errno);
  EXPECT_TRUE(Received(client546)) << "DHCPv6 reply fe80::2:547 -> fe80::1:546 dropped\n"
                                   << table_text_;
  // The same from a global address is not the VM's addressing: dropped.
  const int global547 = Udp(net_.client, Ipv6("2001:db8::2", 547));
  sockaddr_in6 to_global = Ipv6("2001:db8::1", 546);
  InNetns(net_.client, [&] {
    sent = static_cast<int>(sendto(global547, "reply", 5, 0,
                                   reinterpret_cast<sockaddr*>(&to_global), sizeof(to_global)));
  });
  ASSERT_EQ(sent, 5) << strerror(errno);
  EXPECT_FALSE(Received(client546, 500)) << "a DHCPv6 reply from a global source got in";
  close(global547);
  close(client546);
  close(server547);
}

TEST_F(AddressingPacketsTest, NeighbourDiscoveryResolvesBothWays) {
  std::string out;
  Sh(absl::StrCat("ip -n ", net_.server, " neigh flush dev va; ip -n ", net_.client,
                  " neigh flush dev vb"));
  // An echo over link-local addresses with empty neighbour caches: the peer
  // must solicit the VM (NS in, NA out) and the VM the peer to answer (NS
  // out, NA in).
  const int peer = Icmp6(net_.client, ICMP6_ECHO_REPLY, "fe80::2");
  unsigned char echo[8] = {ICMP6_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1};
  sockaddr_in6 to_vm = Ipv6("fe80::1", 0);
  int sent = -1;
  InNetns(net_.client, [&] {
    Scope(&to_vm, "vb");
    sent = static_cast<int>(
        sendto(peer, echo, sizeof(echo), 0, reinterpret_cast<sockaddr*>(&to_vm), sizeof(to_vm)));
  });
  ASSERT_EQ(sent, 8) << strerror(errno);
  EXPECT_TRUE(Received(peer, 3000)) << "no echo reply: neighbour discovery was cut\n"
                                    << table_text_;
  Sh(absl::StrCat("ip -n ", net_.server, " -6 neigh show dev va"), &out);
  EXPECT_NE(out.find("fe80::2"), std::string::npos) << out;
  EXPECT_EQ(out.find("FAILED"), std::string::npos) << out;
  close(peer);
}

TEST_F(AddressingPacketsTest, MldIsDeliveredFromLinkLocalOnly) {
  EXPECT_TRUE(MldDelivered(130, "fe80::2")) << "MLD query dropped\n" << table_text_;
  EXPECT_TRUE(MldDelivered(143, "fe80::2")) << "MLDv2 report dropped";
  EXPECT_TRUE(MldDelivered(131, "fe80::2")) << "MLDv1 report dropped";
  EXPECT_FALSE(MldDelivered(130, "2001:db8::2")) << "an MLD query from a global source got in";
}

}  // namespace
}  // namespace nodeward::platform
