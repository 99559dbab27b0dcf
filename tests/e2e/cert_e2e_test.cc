// Certificate rotation through the real agent over mTLS (issue 15): a
// service target's key is made on the node, its CSR comes back, the signed
// chain is installed as a new version, health reports the horizon, and a bad
// chain is refused with its reason while the served version stays.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "agent/common/reason.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_ca.h"
#include "tests/e2e/agent_process.h"

namespace nodeward::testing {
namespace {

class CertE2eTest : public ::testing::Test {
 protected:
  CertE2eTest() : ca_("e2e service CA", absl::Now()), other_("unrelated CA", absl::Now()) {}
  void SetUp() override {
    std::ofstream(agent_.dir() + "/service-ca.pem") << ca_.Pem();
    auto* t = agent_.config().mutable_certificates()->add_targets();
    t->set_name("pg");
    t->set_directory(agent_.dir() + "/certs/pg");
    t->add_allowed_sans("db-7.internal");
    t->set_ca_bundle_file(agent_.dir() + "/service-ca.pem");
    for (const char* type : {"request_certificate", "install_certificate"}) {
      auto* p = agent_.config().mutable_trust()->add_policies();
      p->set_command_type(type);
      p->add_allowed_roles("orchestrator");
    }
    ASSERT_THAT(agent_.Start(), IsOk());
  }
  ExecuteOutcome Send(nodeward::v1::Command c) {
    c.set_node_id(agent_.node_id());
    c.set_boot_id(agent_.boot_id());
    c.set_sequence(++seq_);
    FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
    auto ch = agent_.Channel();
    EXPECT_THAT(ch, IsOk());
    return ExecuteCommand(ch->get(), SignCommand(c, {&agent_.key()}).value(), absl::Seconds(10));
  }
  // RequestCertificate, then the chain `ca` issues for the CSR's key.
  std::string RequestAndIssue(const TestCa& ca) {
    nodeward::v1::Command c;
    c.mutable_request_certificate()->set_target("pg");
    ExecuteOutcome r = Send(c);
    EXPECT_THAT(r.status, IsOk());
    EVP_PKEY* k = TestCa::CsrKey(r.result.certificate().csr_pem());
    EXPECT_NE(k, nullptr);
    TestCa::Leaf l;
    l.not_before = absl::Now() - absl::Minutes(5);
    l.not_after = absl::Now() + absl::Hours(24 * 30);
    std::string chain = ca.Issue(k, l);
    EVP_PKEY_free(k);
    return chain;
  }
  ExecuteOutcome Install(const std::string& chain) {
    nodeward::v1::Command c;
    c.mutable_install_certificate()->set_target("pg");
    c.mutable_install_certificate()->set_chain_pem(chain);
    return Send(c);
  }
  AgentProcess agent_;
  TestCa ca_;
  TestCa other_;
  uint64_t seq_ = 0;
};

TEST_F(CertE2eTest, RotationInstallsAndHealthReportsTheHorizon) {
  const std::string chain = RequestAndIssue(ca_);
  ExecuteOutcome done = Install(chain);
  ASSERT_THAT(done.status, IsOk());
  EXPECT_EQ(done.result.certificate().version(), 1u);
  const std::string dir = agent_.dir() + "/certs/pg";
  char link[64] = {0};
  ASSERT_GT(readlink((dir + "/current").c_str(), link, sizeof(link) - 1), 0);
  EXPECT_STREQ(link, "v1");
  struct stat st;
  ASSERT_EQ(stat((dir + "/current/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<nodeward::v1::StatusReport> s = agent_.Status();
  ASSERT_THAT(s, IsOk());
  ASSERT_EQ(s->health().certificates_size(), 1);
  const auto& h = s->health().certificates(0);
  EXPECT_EQ(h.state(), nodeward::v1::CertificateHealth::OK);
  EXPECT_EQ(h.spki_sha256(), done.result.certificate().spki_sha256());
  EXPECT_GT(h.renewal_due_at().seconds(), h.not_before().seconds());

  // A chain from another CA: refused, its reason, v1 still served.
  ExecuteOutcome bad = Install(RequestAndIssue(other_));
  EXPECT_EQ(bad.reason, reason::kCertChainUntrusted) << bad.status;
  EXPECT_TRUE(bad.result.sequence_consumed());
  ASSERT_GT(readlink((dir + "/current").c_str(), link, sizeof(link) - 1), 0);
  EXPECT_STREQ(link, "v1");
  // The next good one becomes v2.
  ASSERT_THAT(Install(RequestAndIssue(ca_)).status, IsOk());
  std::fill(std::begin(link), std::end(link), 0);
  ASSERT_GT(readlink((dir + "/current").c_str(), link, sizeof(link) - 1), 0);
  EXPECT_STREQ(link, "v2");
}

TEST(CertE2eDisabledTest, WithoutTargetsTheCommandsAreDisabled) {
  AgentProcess agent;
  auto* p = agent.config().mutable_trust()->add_policies();
  p->set_command_type("request_certificate");
  p->add_allowed_roles("orchestrator");
  ASSERT_THAT(agent.Start(), IsOk());
  nodeward::v1::Command c;
  c.set_node_id(agent.node_id());
  c.set_boot_id(agent.boot_id());
  c.set_sequence(1);
  c.mutable_request_certificate()->set_target("pg");
  FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
  auto ch = agent.Channel();
  ASSERT_THAT(ch, IsOk());
  ExecuteOutcome r = ExecuteCommand(ch->get(), SignCommand(c, {&agent.key()}).value());
  EXPECT_EQ(r.reason, reason::kCapabilityDisabled) << r.status;
}

}  // namespace
}  // namespace nodeward::testing
