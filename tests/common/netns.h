#ifndef NODEWARD_TESTS_COMMON_NETNS_H_
#define NODEWARD_TESTS_COMMON_NETNS_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/shell.h"

namespace nodeward::testing {

// Runs `fn` on a thread that entered network namespace `ns`; sockets made
// there stay in that namespace.
inline void InNetns(const std::string& ns, const std::function<void()>& fn) {
  std::thread t([&] {
    int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << ns;
    ASSERT_EQ(setns(fd, CLONE_NEWNET), 0) << ns;
    close(fd);
    fn();
  });
  t.join();
}

inline sockaddr_in Ipv4(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

// Two namespaces joined by a veth: `server` has 10.X.0.1/24, `client` has
// 10.X.0.2/24 and 10.X.0.3/24 (two sources). Deleted on destruction. The
// host's own network is never touched.
class NetnsPair {
 public:
  NetnsPair(const std::string& tag, int subnet) : subnet_(subnet) {
    server = absl::StrCat("nw", tag, getpid(), "s");
    client = absl::StrCat("nw", tag, getpid(), "c");
    std::string net = absl::StrCat("10.", subnet, ".0.");
    ok = Sh(absl::StrCat("ip netns add ", server, " && ip netns add ", client,
                         " && ip link add va netns ", server, " type veth peer name vb netns ",
                         client, " && ip -n ", server, " addr add ", net, "1/24 dev va",
                         " && ip -n ", client, " addr add ", net, "2/24 dev vb",
                         " && ip -n ", client, " addr add ", net, "3/24 dev vb",
                         " && ip -n ", server, " link set va up && ip -n ", server,
                         " link set lo up && ip -n ", client, " link set vb up && ip -n ", client,
                         " link set lo up"),
              &setup_output) == 0;
  }
  ~NetnsPair() { Sh(absl::StrCat("ip netns delete ", server, "; ip netns delete ", client)); }
  std::string Ip(int host) const { return absl::StrCat("10.", subnet_, ".0.", host); }

  // A listening TCP socket in the server namespace.
  int Listen(uint16_t port) {
    int fd = -1;
    InNetns(server, [&] {
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in a = Ipv4(Ip(1).c_str(), port);
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 64) != 0) {
        close(fd);
        fd = -1;
      }
    });
    return fd;
  }

  // A TCP connect from client address `host` to the server's `port`; the
  // connected fd, or -1 if it did not complete in time (SYN dropped).
  // `sport` 0: any source port; else that one (SO_REUSEADDR).
  int Connect(int host, uint16_t port, int wait_ms = 700, uint16_t sport = 0) {
    int fd = -1;
    InNetns(client, [&] {
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      int one = 1;
      if (sport != 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in src = Ipv4(Ip(host).c_str(), sport);
      if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0 && sport != 0) {
        ADD_FAILURE() << "bind " << Ip(host) << ":" << sport << ": " << strerror(errno);
      }
    });
    sockaddr_in dst = Ipv4(Ip(1).c_str(), port);
    connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst));
    pollfd p{fd, POLLOUT, 0};
    int err = -1;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, wait_ms) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }
  bool CanConnect(int host, uint16_t port) {
    int fd = Connect(host, port);
    if (fd >= 0) close(fd);
    return fd >= 0;
  }

  std::string server, client, setup_output;
  bool ok = false;

 private:
  int subnet_;
};

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_COMMON_NETNS_H_
