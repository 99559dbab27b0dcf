// Certificate rotation through the real agent over mTLS (issue 15): a
// service target's key is made on the node, its CSR comes back, the signed
// chain is installed as a new version, health reports the horizon, and a bad
// chain is refused with its reason while the served version stays.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "agent/common/reason.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "nodeward/v1/agent.grpc.pb.h"
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
  ExecuteOutcome Send(nodeward::v1::Command c) { return agent_.Execute(std::move(c), ++seq_); }
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

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The agent's TLS identity read from `dir`/current (v1 already there), and
// `dir` its AGENT_IDENTITY certificate target ("agent").
void ServeIdentityFrom(AgentProcess& agent, const std::string& dir) {
  auto* tls = agent.config().mutable_tls();
  tls->set_server_cert_file(dir + "/current/chain.pem");
  tls->set_server_key_file(dir + "/current/key.pem");
  tls->set_refresh_interval_seconds(1);
  auto* t = agent.config().mutable_certificates()->add_targets();
  t->set_name("agent");
  t->set_directory(dir);
  for (const char* san : {"localhost", "127.0.0.1", "::1"}) t->add_allowed_sans(san);
  t->set_ca_bundle_file(agent.dir() + "/pki/ca.pem");
  t->mutable_reload()->set_how(nodeward::v1::ReloadAction::AGENT_IDENTITY);
  for (const char* type : {"request_certificate", "install_certificate"}) {
    auto* p = agent.config().mutable_trust()->add_policies();
    p->set_command_type(type);
    p->add_allowed_roles("orchestrator");
  }
}

// The PEM of the certificate a new connection's handshake was served.
std::string ServedPem(AgentProcess& agent, int tag) {
  ClientTls tls = agent.Tls();
  tls.connection_tag = tag;  // a new connection, a new handshake
  auto ch = MakeAgentChannel(agent.target(), tls);
  if (!ch.ok()) return "";
  auto stub = grpc::health::v1::Health::NewStub(*ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok() || ctx.auth_context() == nullptr) return "";
  for (const auto& v : ctx.auth_context()->FindPropertyValues("x509_pem_cert")) {
    return std::string(v.data(), v.size());
  }
  return "";
}

// Point 4: the agent's own identity rotates without a restart: the install
// returns once a new handshake presents the new certificate, a WatchHealth
// stream opened before it goes on, and a new connection sees the new one.
TEST(CertIdentityE2eTest, RotatingTheAgentsIdentityKeepsStreamsAndServesTheNewOne) {
  AgentProcess agent;
  const std::string dir = agent.dir() + "/identity";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((dir + "/v1").c_str(), 0755), 0);
  std::ofstream(dir + "/v1/chain.pem") << ReadAll(agent.dir() + "/pki/server.pem");
  std::ofstream(dir + "/v1/key.pem") << ReadAll(agent.dir() + "/pki/server.key");
  ASSERT_EQ(symlink("v1", (dir + "/current").c_str()), 0);
  ServeIdentityFrom(agent, dir);
  ASSERT_THAT(agent.Start(), IsOk());
  const std::string before = ServedPem(agent, 1);
  ASSERT_FALSE(before.empty());

  auto ch = agent.Channel();
  ASSERT_THAT(ch, IsOk());
  auto stub = nodeward::v1::NodeAgent::NewStub(*ch);
  grpc::ClientContext watch_ctx;
  nodeward::v1::WatchHealthRequest req;
  auto reader = stub->WatchHealth(&watch_ctx, req);
  nodeward::v1::HealthReport report;
  ASSERT_TRUE(reader->Read(&report));

  uint64_t seq = 0;
  auto send = [&](nodeward::v1::Command c) {
    c.set_node_id(agent.node_id());
    c.set_boot_id(agent.boot_id());
    c.set_sequence(++seq);
    FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
    return ExecuteCommand(ch->get(), SignCommand(c, {&agent.key()}).value(), absl::Seconds(15));
  };
  nodeward::v1::Command request;
  request.mutable_request_certificate()->set_target("agent");
  request.mutable_request_certificate()->set_common_name("nodeward-agent");
  ExecuteOutcome csr = send(request);
  ASSERT_THAT(csr.status, IsOk());
  EVP_PKEY* k = TestCa::CsrKey(csr.result.certificate().csr_pem());
  ASSERT_NE(k, nullptr);
  TestCa dev_ca(ReadAll(agent.dir() + "/pki/ca.pem"), ReadAll(agent.dir() + "/pki/ca.key"));
  TestCa::Leaf l;
  l.sans = {"localhost", "127.0.0.1", "::1"};
  l.not_before = absl::Now() - absl::Minutes(1);
  l.not_after = absl::Now() + absl::Hours(24 * 30);
  const std::string chain = dev_ca.Issue(k, l);
  EVP_PKEY_free(k);
  nodeward::v1::Command install;
  install.mutable_install_certificate()->set_target("agent");
  install.mutable_install_certificate()->set_chain_pem(chain);
  const absl::Time sent = absl::Now();
  ExecuteOutcome done = send(install);
  const absl::Duration took = absl::Now() - sent;
  ASSERT_THAT(done.status, IsOk()) << done.status;
  std::cout << "identity install to new handshakes: " << absl::FormatDuration(took) << "\n";
  EXPECT_LT(took, absl::Seconds(3));

  const std::string after = ServedPem(agent, 2);
  EXPECT_EQ(after, chain) << "a new connection is not served the new certificate";
  EXPECT_NE(after, before);
  // The stream opened before the rotation goes on (the install and the
  // next command are pushed to it).
  nodeward::v1::Command ping;
  ping.mutable_ping()->set_note("after the rotation");
  ASSERT_THAT(send(ping).status, IsOk());
  bool saw = false;
  for (int i = 0; i < 5 && !saw && reader->Read(&report); ++i) {
    saw = report.commands().applied() >= 3;
  }
  EXPECT_TRUE(saw) << "the WatchHealth stream did not continue";
  watch_ctx.TryCancel();
  (void)reader->Finish();
}

// Point 6, threat 44: an expired agent identity is a recovery path, not a
// wedge. A client that checks validity cannot connect; one that pins the SPKI
// health reported connects, and the signed commands rotate the identity.
TEST(CertIdentityE2eTest, AnExpiredIdentityIsRecoveredThroughThePinnedSpki) {
  AgentProcess agent;
  const std::string dir = agent.dir() + "/identity";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((dir + "/v1").c_str(), 0755), 0);
  TestCa dev_ca(ReadAll(agent.dir() + "/pki/ca.pem"), ReadAll(agent.dir() + "/pki/ca.key"));
  EVP_PKEY* old_key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  TestCa::Leaf expired;
  expired.sans = {"localhost", "127.0.0.1", "::1"};
  expired.not_before = absl::Now() - absl::Hours(48);
  expired.not_after = absl::Now() - absl::Hours(1);  // the VM was paused past it
  std::ofstream(dir + "/v1/chain.pem") << dev_ca.Issue(old_key, expired);
  {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, old_key, nullptr, nullptr, 0, nullptr, nullptr);
    char* d = nullptr;
    const long n = BIO_get_mem_data(b, &d);
    std::ofstream(dir + "/v1/key.pem") << std::string(d, static_cast<size_t>(n));
    BIO_free(b);
  }
  EVP_PKEY_free(old_key);
  ASSERT_EQ(symlink("v1", (dir + "/current").c_str()), 0);
  ServeIdentityFrom(agent, dir);
  ASSERT_THAT(agent.Start(), IsOk());
  // What the orchestrator recorded from health (here: the status socket).
  absl::StatusOr<nodeward::v1::StatusReport> st = agent.Status();
  ASSERT_THAT(st, IsOk());
  ASSERT_EQ(st->health().certificates_size(), 1);
  EXPECT_EQ(st->health().certificates(0).state(), nodeward::v1::CertificateHealth::EXPIRED);
  const std::string pin = st->health().certificates(0).spki_sha256();

  uint64_t seq = 0;
  auto send = [&](std::shared_ptr<grpc::Channel> ch, nodeward::v1::Command c) {
    c.set_node_id(agent.node_id());
    c.set_boot_id(agent.boot_id());
    c.set_sequence(++seq);
    FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
    return ExecuteCommand(ch.get(), SignCommand(c, {&agent.key()}).value(), absl::Seconds(15));
  };
  nodeward::v1::Command ping;
  ping.mutable_ping();
  auto checked = agent.Channel();
  ASSERT_THAT(checked, IsOk());
  EXPECT_EQ(send(*checked, ping).status.code(), absl::StatusCode::kUnavailable)
      << "a validity-checking client should not get through an expired identity";
  --seq;  // never reached the agent
  ClientTls pinned_tls = agent.Tls();
  pinned_tls.pin_spki = pin;
  auto pinned = MakeAgentChannel(agent.target(), pinned_tls);
  ASSERT_THAT(pinned, IsOk());
  ASSERT_THAT(send(*pinned, ping).status, IsOk());
  ClientTls wrong = agent.Tls();
  wrong.pin_spki = std::string(64, '0');
  wrong.connection_tag = 7;
  auto wrong_ch = MakeAgentChannel(agent.target(), wrong);
  ASSERT_THAT(wrong_ch, IsOk());
  EXPECT_EQ(send(*wrong_ch, ping).status.code(), absl::StatusCode::kUnavailable);
  --seq;

  nodeward::v1::Command request;
  request.mutable_request_certificate()->set_target("agent");
  ExecuteOutcome csr = send(*pinned, request);
  ASSERT_THAT(csr.status, IsOk());
  EVP_PKEY* k = TestCa::CsrKey(csr.result.certificate().csr_pem());
  TestCa::Leaf fresh;
  fresh.sans = {"localhost", "127.0.0.1", "::1"};
  fresh.not_before = absl::Now() - absl::Minutes(1);
  fresh.not_after = absl::Now() + absl::Hours(24 * 30);
  nodeward::v1::Command install;
  install.mutable_install_certificate()->set_target("agent");
  install.mutable_install_certificate()->set_chain_pem(dev_ca.Issue(k, fresh));
  EVP_PKEY_free(k);
  ASSERT_THAT(send(*pinned, install).status, IsOk());
  // Recovered: a client that checks everything gets in again.
  ClientTls again_tls = agent.Tls();
  again_tls.connection_tag = 9;
  auto again = MakeAgentChannel(agent.target(), again_tls);
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT(send(*again, ping).status, IsOk());
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
