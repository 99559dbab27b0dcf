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
#include "gtest/gtest.h"
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
    pid_ = fork();
    if (pid_ == 0) {
      std::string log = dir_ + "/agent.log";
      freopen(log.c_str(), "a", stderr);
      execlp("ip", "ip", "netns", "exec", net_.server.c_str(), NODEWARD_AGENT_BIN, "--config",
             (dir_ + "/agent.json").c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      std::ifstream in(dir_ + "/agent.log");
      std::stringstream ss;
      ss << in.rdbuf();
      if (absl::StrContains(ss.str(), "serving on")) return;
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "agent exited: " << ss.str();
      }
      usleep(50000);
    }
    FAIL() << "agent never became ready";
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

}  // namespace
}  // namespace nodeward::testing
