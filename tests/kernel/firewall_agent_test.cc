// Kernel tier, end to end: nodeward-agent with the firewall enabled runs in
// its own network namespace; the reference client in a second namespace
// sends signed ApplyFirewall commands over mTLS; TCP connects from two
// source addresses show what the kernel lets through. Needs root.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/firewall/ruleset_builder.h"
#include "gtest/gtest.h"
#include "platform/filter_plan.h"
#include "platform/linux/nft_packet_filter_linux.h"
#include "tests/common/netns.h"

namespace nodeward::testing {
namespace {

class FirewallAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the kernel tier needs root (CI runs as root)";
    ASSERT_TRUE(net_.ok) << net_.setup_output;
    char tmpl[] = "/tmp/nw-fw-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::string out;
    ASSERT_EQ(Sh(absl::StrCat(NODEWARDCTL_BIN, " dev-pki --out ", dir_, "/pki && ",
                              NODEWARDCTL_BIN, " keygen --out ", dir_, "/k"),
                 &out),
              0)
        << out;
    std::ifstream pub(dir_ + "/k.pub.json");
    std::stringstream key;
    key << pub.rdbuf();
    std::ofstream(dir_ + "/agent.json") << absl::StrCat(R"({
      "node_id": "fw-node", "listen_address": ")", net_.Ip(1), R"(:7443",
      "tls": {"server_cert_file": ")", dir_, R"(/pki/server.pem", "server_key_file": ")", dir_,
      R"(/pki/server.key", "client_ca_file": ")", dir_, R"(/pki/ca.pem"},
      "state_dir": ")", dir_, R"(/state", "status_socket": {"path": ")", dir_, R"(/status.sock"},
      "firewall": {"enabled": true, "management_cidrs": [")", net_.Ip(2), R"(/32"]},
      "limits": {"max_envelope_bytes": 4194304},
      "trust": {"keys": [)", key.str(), R"(], "policies": [
        {"command_type": "apply_firewall", "allowed_roles": ["orchestrator"]},
        {"command_type": "confirm_firewall", "allowed_roles": ["orchestrator"]}]}})");
    listen_fd_ = net_.Listen(5432);
    ASSERT_GE(listen_fd_, 0);
  }
  void TearDown() override {
    StopAgent();
    if (listen_fd_ >= 0) close(listen_fd_);
    Sh("rm -rf " + dir_);
  }

  void StartAgent() {
    // The log is appended to across restarts: only look past its end now.
    size_t offset = 0;
    {
      std::ifstream in(dir_ + "/agent.log");
      std::stringstream ss;
      ss << in.rdbuf();
      offset = ss.str().size();
    }
    pid_ = fork();
    if (pid_ == 0) {
      std::string log = dir_ + "/agent.log";
      if (freopen(log.c_str(), "a", stderr) == nullptr) _exit(126);
      execlp("ip", "ip", "netns", "exec", net_.server.c_str(), NODEWARD_AGENT_BIN, "--config",
             (dir_ + "/agent.json").c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 600; ++i) {  // 30 s: a restore of 50k entries under ASan and load
      std::ifstream in(dir_ + "/agent.log");
      std::stringstream ss;
      ss << in.rdbuf();
      if (ss.str().size() > offset && absl::StrContains(ss.str().substr(offset), "serving on")) {
        return;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "agent exited: " << ss.str();
      }
      usleep(50000);
    }
    FAIL() << "agent never became ready";
  }
  void KillAgent() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    // `ip netns exec` execs the agent, so the pid is the agent's own.
  }
  void StopAgent() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // Sends ApplyFirewall from the client namespace; returns nodewardctl's
  // output (APPLIED ... / REJECTED ...).
  std::string Send(uint64_t seq, uint64_t generation, const std::string& cidrs,
                   uint32_t confirm_within = 0) {
    return SendJson(absl::StrCat(
        R"({"node_id": "fw-node", "sequence": )", seq,
        R"(, "apply_firewall": {"generation": )", generation,
        R"(, "confirm_within_seconds": )", confirm_within,
        R"(, "services": [{"name": "pg", "protocol": "PROTOCOL_TCP", "ports": [{"first": 5432}], "allowed_cidrs": [)",
        cidrs, "]}]}}"));
  }
  std::string Nft(const std::string& args) {
    std::string out;
    Sh(absl::StrCat("ip netns exec ", net_.server, " nft ", args), &out);
    return out;
  }
  std::string Status() {
    std::string out;
    Sh(absl::StrCat(NODEWARDCTL_BIN, " status --socket ", dir_, "/status.sock"), &out);
    return out;
  }
  // IPv4 intervals in the agent's table, read back from the kernel.
  uint64_t KernelIpv4Intervals() {
    uint64_t n = 0;
    InNetns(net_.server, [&] {
      platform::NftPacketFilter f;
      absl::StatusOr<platform::KernelTable> t = f.Read();
      if (t.ok() && t->exists) n = platform::CountElements(t->ruleset).ipv4;
    });
    return n;
  }
  std::string SendJson(const std::string& cmd) {
    std::ofstream(dir_ + "/cmd.json") << cmd;
    std::string out;
    Sh(absl::StrCat("ip netns exec ", net_.client, " ", NODEWARDCTL_BIN, " send --target ",
                    net_.Ip(1), ":7443 --server-name localhost --ca ", dir_, "/pki/ca.pem --cert ",
                    dir_, "/pki/client.pem --key ", dir_, "/pki/client.key --signing-key ", dir_,
                    "/k.key --boot-id-file /proc/sys/kernel/random/boot_id --command-file ", dir_,
                    "/cmd.json"),
       &out);
    return out;
  }

  // `nodeward-agent --restore-firewall-only` in the agent's namespace, as
  // nodeward-firewall.service runs it at boot; its exit code.
  int RestoreOnly(std::string* out) {
    return WEXITSTATUS(Sh(absl::StrCat("ip netns exec ", net_.server, " ", NODEWARD_AGENT_BIN,
                                       " --config ", dir_, "/agent.json --restore-firewall-only"),
                          out));
  }

  NetnsPair net_{"f", 98};
  std::string dir_;
  pid_t pid_ = -1;
  int listen_fd_ = -1;
};

TEST_F(FirewallAgentTest, ManagementStaysOpenAndAllowListsApplyAndSurviveRestart) {
  StartAgent();
  // Baseline before any command: management source reaches the agent port,
  // nothing else gets in.
  EXPECT_TRUE(net_.CanConnect(2, 7443));
  EXPECT_FALSE(net_.CanConnect(3, 7443));
  EXPECT_FALSE(net_.CanConnect(3, 5432));

  std::string out = Send(1, 1, "\"" + net_.Ip(3) + "/32\"");
  ASSERT_TRUE(absl::StrContains(out, "APPLIED")) << out;
  EXPECT_TRUE(net_.CanConnect(3, 5432));
  EXPECT_FALSE(net_.CanConnect(2, 5432));
  EXPECT_TRUE(net_.CanConnect(2, 7443));  // management is never removed

  // Refusals change nothing.
  out = Send(2, 1, "\"" + net_.Ip(2) + "/32\"");
  EXPECT_TRUE(absl::StrContains(out, "REJECTED")) << out;
  out = Send(3, 2, "\"0.0.0.0/0\"");
  EXPECT_TRUE(absl::StrContains(out, "REJECTED")) << out;
  EXPECT_TRUE(net_.CanConnect(3, 5432));
  EXPECT_FALSE(net_.CanConnect(2, 5432));

  // The customer narrows to another address: takes effect at once.
  out = Send(4, 2, "\"" + net_.Ip(2) + "/32\"");
  ASSERT_TRUE(absl::StrContains(out, "APPLIED")) << out;
  EXPECT_TRUE(net_.CanConnect(2, 5432));
  EXPECT_FALSE(net_.CanConnect(3, 5432));

  // Restart: the persisted state is back in the kernel before READY.
  StopAgent();
  StartAgent();
  EXPECT_TRUE(net_.CanConnect(2, 5432));
  EXPECT_FALSE(net_.CanConnect(3, 5432));
  out = Send(5, 2, "\"" + net_.Ip(3) + "/32\"");
  EXPECT_TRUE(absl::StrContains(out, "REJECTED")) << "generation must survive restart: " << out;
  Sh(absl::StrCat(NODEWARDCTL_BIN, " status --socket ", dir_, "/status.sock"), &out);
  EXPECT_TRUE(absl::StrContains(out, "firewall:       generation 2")) << out;
}

// Commit-confirmed: an apply nobody confirms is rolled back by the agent on
// its own; a confirmed one stays.
TEST_F(FirewallAgentTest, UnconfirmedApplyIsRolledBack) {
  StartAgent();
  ASSERT_TRUE(absl::StrContains(Send(1, 1, "\"" + net_.Ip(2) + "/32\""), "APPLIED"));
  std::string out = Send(2, 2, "\"" + net_.Ip(3) + "/32\"", /*confirm_within=*/2);
  ASSERT_TRUE(absl::StrContains(out, "awaiting_confirmation")) << out;
  EXPECT_TRUE(net_.CanConnect(3, 5432));
  bool rolled_back = false;
  for (int i = 0; i < 40 && !rolled_back; ++i) {
    usleep(200000);
    rolled_back = !net_.CanConnect(3, 5432);
  }
  EXPECT_TRUE(rolled_back) << "no rollback within 8 s of a 2 s deadline";
  EXPECT_TRUE(net_.CanConnect(2, 5432));
  Sh(absl::StrCat(NODEWARDCTL_BIN, " status --socket ", dir_, "/status.sock"), &out);
  EXPECT_TRUE(absl::StrContains(out, "1 rollbacks")) << out;

  out = Send(3, 3, "\"" + net_.Ip(3) + "/32\"", /*confirm_within=*/30);
  ASSERT_TRUE(absl::StrContains(out, "awaiting_confirmation")) << out;
  out = SendJson(R"({"node_id": "fw-node", "sequence": 4, "confirm_firewall": {"generation": 3}})");
  ASSERT_TRUE(absl::StrContains(out, "APPLIED")) << out;
  EXPECT_TRUE(net_.CanConnect(3, 5432));
}

// Drift: `nft flush ruleset` and a foreign rule in the agent's table are
// both undone within about a second, counted and reported.
TEST_F(FirewallAgentTest, FlushAndForeignEditsAreRepaired) {
  StartAgent();
  ASSERT_TRUE(absl::StrContains(Send(1, 1, "\"" + net_.Ip(3) + "/32\""), "APPLIED"));
  ASSERT_FALSE(net_.CanConnect(2, 5432));

  Nft("flush ruleset");
  absl::Time flushed = absl::Now();
  bool back = false;
  while (!back && absl::Now() - flushed < absl::Seconds(5)) {
    back = absl::StrContains(Nft("list table inet nodeward"), "policy drop");
    if (!back) usleep(20000);
  }
  ASSERT_TRUE(back) << "table not restored within 5 s";
  std::cerr << "table restored " << absl::ToDoubleMilliseconds(absl::Now() - flushed)
            << " ms after nft flush ruleset\n";
  EXPECT_LT(absl::Now() - flushed, absl::Seconds(1));
  EXPECT_TRUE(net_.CanConnect(3, 5432));
  EXPECT_FALSE(net_.CanConnect(2, 5432));

  // Someone opens a hole in the agent's own chain.
  Nft("insert rule inet nodeward input ip saddr " + net_.Ip(2) + " accept");
  absl::Time edited = absl::Now();
  bool gone = false;
  while (!gone && absl::Now() - edited < absl::Seconds(5)) {
    gone = !absl::StrContains(Nft("list chain inet nodeward input"), "ip saddr " + net_.Ip(2) + " accept");
    if (!gone) usleep(20000);
  }
  ASSERT_TRUE(gone) << "foreign rule not removed within 5 s";
  EXPECT_LT(absl::Now() - edited, absl::Seconds(1));
  EXPECT_FALSE(net_.CanConnect(2, 5432));
  EXPECT_TRUE(net_.CanConnect(2, 7443));

  // A foreign element in our set is removed too.
  Nft("add element inet nodeward svc_pg_v4 { " + net_.Ip(2) + " }");
  absl::Time added = absl::Now();
  bool removed = false;
  while (!removed && absl::Now() - added < absl::Seconds(5)) {
    removed = !absl::StrContains(Nft("list set inet nodeward svc_pg_v4"), net_.Ip(2));
    if (!removed) usleep(20000);
  }
  EXPECT_TRUE(removed);

  const std::string status = Status();
  EXPECT_TRUE(absl::StrContains(status, "drift repairs: 3")) << status;
  EXPECT_TRUE(absl::StrContains(status, "by nft")) << status;
  // Someone else's table is none of the agent's business.
  Nft("add table inet other");
  usleep(300000);
  EXPECT_TRUE(absl::StrContains(Nft("list tables"), "table inet other"));
  EXPECT_TRUE(absl::StrContains(Status(), "drift repairs: 3"));
}

// Issue "Hardening II" point 7: `flags dormant` switches the whole table off
// while every rule stays in place; fcf3c42 ignored the flags (health SERVING,
// hash unchanged, a refused source connecting). Now any flag is drift,
// repaired by a replace, and the flags are part of the content hash.
TEST_F(FirewallAgentTest, DormantTableIsDriftAndRepaired) {
  StartAgent();
  ASSERT_TRUE(absl::StrContains(Send(1, 1, "\"" + net_.Ip(3) + "/32\""), "APPLIED"));
  ASSERT_FALSE(net_.CanConnect(2, 5432));
  Nft("add table inet nodeward '{ flags dormant; }'");
  const absl::Time set = absl::Now();
  bool repaired = false;
  while (!repaired && absl::Now() - set < absl::Seconds(5)) {
    repaired = !absl::StrContains(Nft("list table inet nodeward"), "dormant");
    if (!repaired) usleep(20000);
  }
  ASSERT_TRUE(repaired) << "dormant flag still set after 5 s: " << Nft("list table inet nodeward");
  EXPECT_FALSE(net_.CanConnect(2, 5432));
  EXPECT_TRUE(net_.CanConnect(3, 5432));
  const std::string status = Status();
  EXPECT_TRUE(absl::StrContains(status, "drift repairs: 1")) << status;
}

// Issue "Hardening II" point 9: drops that are not directly in a base chain
// of another table: a fail2ban-style jump to a rejecting chain, a goto, a
// verdict map, and a netdev ingress hook. fcf3c42 saw none of them.
TEST_F(FirewallAgentTest, ForeignDropsBehindJumpsMapsAndIngressAreReported) {
  StartAgent();
  auto await = [&](const std::string& want) {
    std::string status;
    for (int i = 0; i < 100; ++i) {
      status = Status();
      if (absl::StrContains(status, want)) return status;
      usleep(30000);
    }
    return status;
  };
  Nft("add table ip f2b");
  Nft("add chain ip f2b input '{ type filter hook input priority -5; policy accept; }'");
  Nft("add chain ip f2b ban");
  Nft("add rule ip f2b ban ip saddr 10.0.0.0/8 tcp dport 7443 reject");
  Nft("add rule ip f2b input jump ban");
  std::string st = await("table ip f2b chain input");
  EXPECT_TRUE(absl::StrContains(st, "table ip f2b chain input (hook input, priority -5): 1 "
                                    "drop/reject rules (via ban)"))
      << st;
  Nft("add table ip other2");
  Nft("add chain ip other2 pre '{ type filter hook prerouting priority -300; policy accept; }'");
  Nft("add chain ip other2 deeper");
  Nft("add chain ip other2 deepest");
  Nft("add rule ip other2 deepest drop");
  Nft("add rule ip other2 deeper goto deepest");
  Nft("add rule ip other2 pre tcp dport 22 goto deeper");
  st = await("table ip other2 chain pre");
  EXPECT_TRUE(absl::StrContains(st, "table ip other2 chain pre (hook prerouting, priority -300): "
                                    "1 drop/reject rules"))
      << st;
  Nft("add table inet vm");
  Nft("add chain inet vm in '{ type filter hook input priority -1; policy accept; }'");
  Nft("add rule inet vm in tcp dport vmap '{ 7443 : drop, 22 : accept }'");
  st = await("table inet vm chain in");
  EXPECT_TRUE(absl::StrContains(st, "table inet vm chain in (hook input, priority -1): 1 "
                                    "drop/reject rules (via map"))
      << st;
  Nft("add table netdev edge");
  Nft("add chain netdev edge ing '{ type filter hook ingress device va priority 0; policy accept; }'");
  Nft("add rule netdev edge ing ip saddr " + net_.Ip(2) + " drop");
  st = await("table netdev edge chain ing");
  EXPECT_TRUE(absl::StrContains(st, "table netdev edge chain ing (hook ingress, priority 0): 1 "
                                    "drop/reject rules"))
      << st;
}

// A restart (even a SIGKILL) with an unchanged state leaves the kernel
// exactly as it was: same objects, same handles.
TEST_F(FirewallAgentTest, RestartWithUnchangedStateChangesNothing) {
  StartAgent();
  ASSERT_TRUE(absl::StrContains(Send(1, 1, "\"" + net_.Ip(3) + "/32\""), "APPLIED"));
  const std::string before = Nft("-a list table inet nodeward");
  KillAgent();
  StartAgent();
  EXPECT_EQ(Nft("-a list table inet nodeward"), before);
  StopAgent();
  StartAgent();
  EXPECT_EQ(Nft("-a list table inet nodeward"), before);
  EXPECT_TRUE(absl::StrContains(Status(), "drift repairs: 0")) << Status();
}

// SIGKILL while a large apply is in flight: the kernel holds all of the old
// list or all of the new one, never a mix, before and after the restart.
TEST_F(FirewallAgentTest, SigkillDuringALargeApplyLeavesOldOrNew) {
  auto list = [](uint32_t second_octet, int n, const std::string& extra) {
    std::string out = "\"" + extra + "/32\"";
    for (int i = 0; i < n; ++i) {
      const uint32_t v = (172u << 24) | (second_octet << 16) | static_cast<uint32_t>(2 * i);
      absl::StrAppend(&out, ",\"", v >> 24, ".", (v >> 16) & 255, ".", (v >> 8) & 255, ".",
                      v & 255, "\"");
    }
    return out;
  };
  const uint64_t old_count = 1 + 30001, new_count = 1 + 50001;  // + management
  StartAgent();
  ASSERT_TRUE(absl::StrContains(Send(1, 1, list(16, 30000, net_.Ip(2))), "APPLIED"));
  ASSERT_EQ(KernelIpv4Intervals(), old_count);
  uint64_t seq = 2, generation = 2;
  int saw_new = 0, saw_old = 0;
  for (int delay_ms : {20, 80, 150, 300, 600}) {
    const std::string cmd = list(20, 50000, net_.Ip(3));
    pid_t sender = fork();
    if (sender == 0) {
      Send(seq, generation, cmd);
      _exit(0);
    }
    usleep(static_cast<useconds_t>(delay_ms) * 1000);
    KillAgent();
    waitpid(sender, nullptr, 0);
    const uint64_t after_kill = KernelIpv4Intervals();
    EXPECT_TRUE(after_kill == old_count || after_kill == new_count)
        << "after SIGKILL at " << delay_ms << " ms: " << after_kill << " intervals";
    StartAgent();
    const uint64_t after_restart = KernelIpv4Intervals();
    EXPECT_TRUE(after_restart == old_count || after_restart == new_count)
        << "after restart: " << after_restart;
    (after_restart == new_count ? saw_new : saw_old)++;
    // Back to the old list for the next round (a fresh generation).
    ++seq;
    generation += 2;
    ASSERT_TRUE(absl::StrContains(Send(seq++, generation - 1, list(16, 30000, net_.Ip(2))), "APPLIED"));
    ASSERT_EQ(KernelIpv4Intervals(), old_count);
  }
  std::cerr << "rounds ending with the new list: " << saw_new << ", with the old: " << saw_old
            << "\n";
}

// threats.md case 37: another table drops management traffic at an earlier
// priority. Our accept cannot override a drop; the agent reports it.
TEST_F(FirewallAgentTest, ForeignDropIsReported) {
  StartAgent();
  EXPECT_FALSE(absl::StrContains(Status(), "FIREWALL_FOREIGN_DROP"));
  Nft("add table ip other");
  Nft("add chain ip other early '{ type filter hook input priority -10; policy accept; }'");
  Nft("add rule ip other early tcp dport 7443 drop");
  std::string status;
  for (int i = 0; i < 50; ++i) {
    status = Status();
    if (absl::StrContains(status, "FIREWALL_FOREIGN_DROP")) break;
    usleep(20000);
  }
  EXPECT_TRUE(absl::StrContains(status, "FIREWALL_FOREIGN_DROP [table ip other chain early "
                                        "(hook input, priority -10): 1 drop/reject rules]"))
      << status;
  EXPECT_FALSE(net_.CanConnect(2, 7443));  // really dropped: hence the report
  Nft("delete table ip other");
  for (int i = 0; i < 50; ++i) {
    status = Status();
    if (!absl::StrContains(status, "FIREWALL_FOREIGN_DROP")) break;
    usleep(20000);
  }
  EXPECT_FALSE(absl::StrContains(status, "FIREWALL_FOREIGN_DROP")) << status;
  EXPECT_TRUE(net_.CanConnect(2, 7443));
}

// The boot step (nodeward-firewall.service, before the network): a reboot
// loses every nftables table; the last confirmed state is back before the
// agent starts, without TLS material and without the agent ever starting.
TEST_F(FirewallAgentTest, TheBootStepRestoresTheFirewallBeforeTheAgent) {
  // First boot: no state yet, the management-only baseline.
  std::string out;
  ASSERT_EQ(RestoreOnly(&out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "management-only baseline")) << out;
  {
    // Something on the management port while the agent is not running.
    const int mgmt = net_.Listen(7443);
    EXPECT_TRUE(net_.CanConnect(2, 7443));
    EXPECT_FALSE(net_.CanConnect(3, 7443));
    close(mgmt);
  }
  EXPECT_FALSE(net_.CanConnect(3, 5432));
  // A confirmed apply, then a "reboot": agent gone, tables gone.
  StartAgent();
  out = Send(1, 1, "\"" + net_.Ip(3) + "/32\"");
  ASSERT_TRUE(absl::StrContains(out, "APPLIED")) << out;
  StopAgent();
  Nft("flush ruleset");
  EXPECT_TRUE(net_.CanConnect(2, 5432)) << "no table: the host is open";
  // The TLS material is gone too: the boot step does not need it.
  Sh(absl::StrCat("mv ", dir_, "/pki ", dir_, "/pki.away"));
  ASSERT_EQ(RestoreOnly(&out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "generation 1 in force")) << out;
  EXPECT_TRUE(net_.CanConnect(3, 5432));
  EXPECT_FALSE(net_.CanConnect(2, 5432)) << "the allow-list is back before the agent";
  {
    const int mgmt = net_.Listen(7443);
    EXPECT_TRUE(net_.CanConnect(2, 7443));
    close(mgmt);
  }
  // And the agent, which cannot start without its TLS material, exits 78
  // (EX_CONFIG: systemd's RestartPreventExitStatus stops the loop) and
  // leaves that firewall in force.
  EXPECT_EQ(WEXITSTATUS(Sh(absl::StrCat("ip netns exec ", net_.server, " ", NODEWARD_AGENT_BIN,
                                        " --config ", dir_, "/agent.json"),
                           &out)),
            78)
      << out;
  EXPECT_TRUE(net_.CanConnect(3, 5432));
  EXPECT_FALSE(net_.CanConnect(2, 5432));
}

TEST_F(FirewallAgentTest, ABrokenConfigChangesNothingAndExits78) {
  std::string out;
  ASSERT_EQ(RestoreOnly(&out), 0) << out;
  const std::string before = Nft("list table inet nodeward");
  std::ofstream(dir_ + "/agent.json") << R"({"node_id": "fw-node", "firewall": {"enabled": tru)";
  EXPECT_EQ(RestoreOnly(&out), 78) << out;
  EXPECT_EQ(Nft("list table inet nodeward"), before);
  EXPECT_EQ(WEXITSTATUS(Sh(absl::StrCat(NODEWARD_AGENT_BIN, " --config ", dir_, "/agent.json"),
                           &out)),
            78)
      << out;
}

}  // namespace
}  // namespace nodeward::testing
