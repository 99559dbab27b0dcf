// Firewall benchmark driver (run by scripts/bench-firewall inside a network
// namespace the script creates). Two modes:
//   gen N DIR     writes DIR/cidrs.txt (N IPv4 + N/10 IPv6 random, disjoint
//                 CIDRs: 30% /24, 30% /28, 40% /32; /64 and /128) and
//                 DIR/full.nft, the equivalent ruleset for `nft -f`.
//   apply DIR     the agent's code on that list, in this namespace: a full
//                 ApplyFirewall through FirewallReconciler (parse, validate,
//                 shard, plan, one netlink transaction, persist), then a
//                 one-element add and delete, each both as a planned
//                 transaction (plan + commit) and as a whole command. Prints
//                 key=value lines, including this process's peak RSS.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/firewall/firewall_reconciler.h"
#include "platform/clock.h"
#include "platform/filter_plan.h"
#include "platform/linux/file_system_linux.h"
#include "platform/linux/nft_packet_filter_linux.h"

namespace {

using namespace nodeward;  // NOLINT
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

int Gen(long n, const std::string& dir) {
  std::mt19937_64 rng(42);
  std::unordered_set<uint32_t> used;
  std::ofstream cidrs(dir + "/cidrs.txt"), nft(dir + "/full.nft");
  std::string v4, v6;
  for (long i = 0; i < n;) {
    uint32_t block = static_cast<uint32_t>(rng() % (223u << 16)) + (1u << 16);  // 1.0.0.0/24 ..
    const uint32_t first_octet = block >> 16;
    if (first_octet == 10 || first_octet == 127 || !used.insert(block).second) continue;
    const uint32_t base = block << 8;
    const int kind = static_cast<int>(rng() % 10);
    uint32_t addr = base;
    int prefix = 24;
    if (kind >= 3 && kind < 6) {
      addr = base | (static_cast<uint32_t>(rng() % 16) << 4);
      prefix = 28;
    } else if (kind >= 6) {
      addr = base | static_cast<uint32_t>(rng() % 256);
      prefix = 32;
    }
    std::string text = absl::StrCat(addr >> 24, ".", (addr >> 16) & 255, ".", (addr >> 8) & 255,
                                    ".", addr & 255, "/", prefix);
    cidrs << text << "\n";
    absl::StrAppend(&v4, i == 0 ? "" : ",\n", text);
    ++i;
  }
  // The data-path client (scripts/bench-firewall) is always allowed.
  cidrs << "10.77.0.2/32\n";
  absl::StrAppend(&v4, ",\n10.77.0.2/32");
  std::unordered_set<uint64_t> used6;
  for (long i = 0; i < n / 10;) {
    uint64_t net = (0x20010db8ull << 32) | (rng() & 0xffffffffull);
    if (!used6.insert(net).second) continue;
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%x:%x:%x:%x::", static_cast<unsigned>(net >> 48),
                  static_cast<unsigned>((net >> 32) & 0xffff),
                  static_cast<unsigned>((net >> 16) & 0xffff), static_cast<unsigned>(net & 0xffff));
    std::string text = (rng() % 2 == 0) ? absl::StrCat(buf, "/64") : absl::StrCat(buf, "1/128");
    cidrs << text << "\n";
    absl::StrAppend(&v6, i == 0 ? "" : ",\n", text);
    ++i;
  }
  nft << "table inet fw {\n  set allow4 { type ipv4_addr; flags interval; elements = {\n" << v4
      << "\n  }; }\n";
  if (!v6.empty()) {
    nft << "  set allow6 { type ipv6_addr; flags interval; elements = {\n" << v6 << "\n  }; }\n";
  }
  nft << "  chain input { type filter hook input priority 0; policy drop;\n"
      << "    ct state established,related accept\n"
      << "    ip saddr @allow4 tcp dport 5432 accept\n"
      << (v6.empty() ? "" : "    ip6 saddr @allow6 tcp dport 5432 accept\n") << "  }\n}\n";
  return 0;
}

// The ApplyFirewall a signed command would carry, read straight from the
// list file (no copy of the list is kept beside it).
VerifiedCommand Command(uint64_t generation, const std::string& file, bool udp,
                        const std::string& extra = "") {
  VerifiedCommand v;
  v.command_type = "apply_firewall";
  auto* a = v.command.mutable_apply_firewall();
  a->set_generation(generation);
  auto* s = a->add_services();
  s->set_name("pg");
  s->set_protocol(udp ? nodeward::v1::PROTOCOL_UDP : nodeward::v1::PROTOCOL_TCP);
  s->add_ports()->set_first(udp ? 9999 : 5432);
  // The compact form (allowed_cidrs_packed): what an orchestrator sends for
  // a list this size; 5 bytes per IPv4 CIDR instead of a string each.
  std::string packed;
  auto add = [&](const std::string& text) {
    absl::StatusOr<firewall::Cidr> c = firewall::ParseCidr(text);
    if (!c.ok()) return;
    const bool v6 = c->family == firewall::Family::kIpv6;
    packed.push_back(static_cast<char>(v6 ? 64 + c->prefix : c->prefix));
    for (int i = v6 ? 15 : 3; i >= 0; --i) {
      packed.push_back(static_cast<char>(static_cast<uint8_t>(c->network >> (8 * i))));
    }
  };
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) add(line);
  if (!extra.empty()) add(extra);
  s->set_allowed_cidrs_packed(std::move(packed));
  return v;
}

firewall::ManagementAccess Management() {
  return {{firewall::ParseCidr("192.0.2.0/24").value()}, {22}};
}

// The agent's firewall stack wired as the daemon wires it, in this network
// namespace, starting from no persisted state; restored (baseline applied).
struct FirewallStack {
  explicit FirewallStack(const std::string& dir)
      : state((std::remove((dir + "/firewall.pb").c_str()), dir + "/firewall.pb")),
        rec(&filter, &fs, &clock, state, Management()) {
    restored = rec.Restore();
    if (!restored.ok()) std::cerr << "restore: " << restored << "\n";
  }
  platform::NftPacketFilter filter{"nodeward"};
  platform::LinuxFileSystem fs;
  platform::SystemClock clock;
  const std::string state;
  firewall::FirewallReconciler rec;
  absl::Status restored;
};

long PeakRssMb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

int Apply(const std::string& dir) {
  const std::string list = dir + "/cidrs.txt";
  FirewallStack stack(dir);
  if (!stack.restored.ok()) return 1;
  firewall::FirewallReconciler& rec = stack.rec;
  platform::NftPacketFilter& filter = stack.filter;
  const firewall::ManagementAccess m = Management();
  auto t0 = Clock::now();
  auto r = rec.Apply(Command(1, list, false));
  auto t1 = Clock::now();
  if (!r.ok()) {
    std::cerr << "apply: " << r.status() << "\n";
    return 1;
  }
  std::cout << "full_ms=" << Ms(t0, t1) << "\n";
  std::cout << "full_plan=\"" << r->firewall().plan() << "\"\n";
  std::cout << "rss_mb_after_full=" << PeakRssMb() << "\n";

  // One element in and out, as the planned transaction alone. The model of
  // the kernel is what the reconciler keeps after a commit.
  auto r0 = Clock::now();
  absl::StatusOr<platform::KernelTable> known = filter.Read();
  std::cout << "readback_ms=" << Ms(r0, Clock::now()) << "\n";  // the periodic drift check
  if (!known.ok()) {
    std::cerr << "read: " << known.status() << "\n";
    return 1;
  }
  const VerifiedCommand first = Command(1, list, false);  // the spec views its strings
  firewall::FirewallSpec spec = firewall::FromProto(first.command.apply_firewall()).value();
  firewall::ValidatedFirewall v = firewall::ValidateFirewall(spec, 0).value();
  spec = firewall::FirewallSpec();
  const absl::uint128 extra = (uint32_t{198} << 24) | (uint32_t{18} << 16) | 77;  // 198.18.0.77
  auto with = v;
  auto& v4 = with.services[0].allowed_v4;
  v4.insert(std::lower_bound(v4.begin(), v4.end(), extra,
                               [](const firewall::Interval& i, absl::uint128 a) { return i.first < a; }),
              firewall::Interval{extra, extra});
  const platform::FilterRuleset base = firewall::BuildRuleset(m, &v);
  const platform::FilterRuleset plus = firewall::BuildRuleset(m, &with);
  for (int round = 0; round < 3; ++round) {
    auto a = Clock::now();
    platform::FilterChange add = platform::PlanChange(*known, plus);
    auto b = Clock::now();
    absl::StatusOr<uint32_t> g = filter.Commit(add, known->genid);
    auto c = Clock::now();
    if (!g.ok()) {
      std::cerr << "add: " << g.status() << "\n";
      return 1;
    }
    known->genid = *g;
    // Bookkeeping, not timed: the reconciler moves the desired ruleset into
    // its model; the bench copies it (35 MB at 1M, 4-5 ms) to reuse `plus`.
    known->ruleset = plus;
    auto c2 = Clock::now();
    platform::FilterChange del = platform::PlanChange(*known, base);
    auto d = Clock::now();
    g = filter.Commit(del, known->genid);
    auto e = Clock::now();
    if (!g.ok()) {
      std::cerr << "delete: " << g.status() << "\n";
      return 1;
    }
    known->genid = *g;
    known->ruleset = base;
    std::cout << "add_plan_ms=" << Ms(a, b) << " add_commit_ms=" << Ms(b, c)
              << " delete_plan_ms=" << Ms(c2, d) << " delete_commit_ms=" << Ms(d, e)
              << " (" << platform::Describe(add) << ")\n";
  }
  // The same change as a whole signed-command payload: the complete list is
  // parsed and validated again (the command is never a patch).
  VerifiedCommand second = Command(2, list, false, "198.18.0.77/32");
  auto f0 = Clock::now();
  auto r2 = rec.Apply(second);
  auto f1 = Clock::now();
  if (!r2.ok()) {
    std::cerr << "apply 2: " << r2.status() << "\n";
    return 1;
  }
  std::cout << "command_add_ms=" << Ms(f0, f1) << " (" << r2->firewall().plan() << ")\n";
  std::cout << "rss_mb=" << PeakRssMb() << "\n";
  return 0;
}

// Data path: new TCP connections per second from one source through the
// ruleset (each a new flow, so each pays the set lookups once; established
// packets never reach them). tcp-sink accepts and closes; connect-rate
// opens and resets connections for SECONDS.
int TcpSink(int port, int seconds) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 4096) != 0) {
    perror("tcp-sink");
    return 1;
  }
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::cout << "ready" << std::endl;
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) close(c);
  }
  return 0;
}

int ConnectRate(const std::string& dst, int port, int seconds) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, dst.c_str(), &a.sin_addr);
  std::vector<double> lat;
  long ok = 0, failed = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    linger l{1, 0};  // RST on close: no TIME_WAIT pile-up
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    auto t0 = Clock::now();
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      ++ok;
    } else {
      ++failed;
    }
    close(fd);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(lat.begin(), lat.end());
  std::cout << "connects_per_s=" << static_cast<long>(ok / secs)
            << " p50_us=" << (lat.empty() ? 0.0 : lat[lat.size() / 2]) << " failed=" << failed
            << "\n";
  return 0;
}

// Applies the list as a firewall state and exits, leaving the table in the
// namespace (for the data-path run).
int ApplyOnly(const std::string& dir, bool twice = false) {
  FirewallStack stack(dir);
  if (!stack.restored.ok()) return 1;
  auto r = stack.rec.Apply(Command(1, dir + "/cidrs.txt", false));
  if (!r.ok()) {
    std::cerr << "apply: " << r.status() << "\n";
    return 1;
  }
  if (!twice) return 0;
  // What the agent's own process holds across a second complete command of
  // the same size (the old model and the new list at once), without the
  // bench's copies: the peak after the second apply.
  std::cout << "rss_mb_after_first=" << PeakRssMb() << "\n";
  r = stack.rec.Apply(Command(2, dir + "/cidrs.txt", false, "198.18.0.77/32"));
  if (!r.ok()) {
    std::cerr << "apply 2: " << r.status() << "\n";
    return 1;
  }
  std::cout << "rss_mb_after_second=" << PeakRssMb() << " (" << r->firewall().plan() << ")\n";
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) std::cout << "resident_now: " << line.substr(6) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "tcp-sink") {
    return TcpSink(std::stoi(argv[2]), std::stoi(argv[3]));
  }
  if (argc == 5 && std::string(argv[1]) == "connect-rate") {
    return ConnectRate(argv[2], std::stoi(argv[3]), std::stoi(argv[4]));
  }
  if (argc == 3 && std::string(argv[1]) == "apply-only") return ApplyOnly(argv[2]);
  if (argc == 3 && std::string(argv[1]) == "apply-twice") return ApplyOnly(argv[2], true);
  if (argc == 4 && std::string(argv[1]) == "gen") return Gen(std::stol(argv[2]), argv[3]);
  if (argc == 3 && std::string(argv[1]) == "apply") return Apply(argv[2]);
  std::cerr << "usage: bench_firewall gen N DIR | apply DIR | apply-only DIR |"
               " tcp-sink PORT SECONDS | connect-rate DST PORT SECONDS\n";
  return 2;
}
