// Certificate rotation on fakes (issue 15; threats.md 41-46): the key is made
// on the node and never reused; a chain is validated completely before
// anything is written; a refusal leaves the served version as it was; an
// install is a new version made current by one symlink swap, and a failure
// at any step leaves the old complete version current.
#include "agent/cert/cert_manager.h"

#include "agent/cert/x509.h"
#include "agent/common/reason.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_ca.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_file_system.h"
#include "tests/fakes/fake_service_control.h"

namespace nodeward::cert {
namespace {

using nodeward::testing::IsOk;
using nodeward::testing::TestCa;
using nodeward::v1::CertificateHealth;
using nodeward::v1::CertificateTarget;
using nodeward::v1::CommandResult;

constexpr char kDir[] = "/etc/nodeward/certs/pg";

class CertManagerTest : public ::testing::Test {
 protected:
  CertManagerTest() : ca_("test CA", clock_.Now()), other_ca_("other CA", clock_.Now()) {}
  void SetUp() override { Make(); }
  void Make(CertificateTarget::Usage usage = CertificateTarget::SERVER,
            nodeward::v1::ReloadAction reload = {}, const std::string& key_group = "",
            const std::string& client_ca_file = "") {
    CertificateTarget t;
    t.set_name("pg");
    t.set_directory(kDir);
    t.add_allowed_sans("db-7.internal");
    t.add_allowed_sans("10.1.2.3");
    t.set_usage(usage);
    t.set_ca_bundle_file("/etc/nodeward/ca.pem");
    *t.mutable_reload() = reload;
    t.set_key_group(key_group);
    if (!key_group.empty()) t.set_key_mode(0640);
    fs_.SetContent("/etc/nodeward/ca.pem", ca_.Pem());
    CertOptions o;
    o.targets = {t};
    o.client_ca_file = client_ca_file;
    o.state_dir = "/state";
    o.node_id = "db-7";
    manager_ = CertificateManager::Create(
        {&fs_, &clock_, &services_, [this] { return Served(); },
         [this](absl::Duration d) { clock_.Advance(d); }},
        o).value();
  }
  absl::StatusOr<CommandResult> Run(const nodeward::v1::Command& c) {
    VerifiedCommand v;
    v.command = c;
    return manager_->Apply(v);
  }
  absl::StatusOr<CommandResult> Request(const std::string& target = "pg") {
    nodeward::v1::Command c;
    c.mutable_request_certificate()->set_target(target);
    return Run(c);
  }
  absl::StatusOr<CommandResult> Install(const std::string& chain, const std::string& bundle = "") {
    nodeward::v1::Command c;
    c.mutable_install_certificate()->set_target("pg");
    c.mutable_install_certificate()->set_chain_pem(chain);
    c.mutable_install_certificate()->set_ca_bundle_pem(bundle);
    return Run(c);
  }
  TestCa::Leaf Valid() {
    TestCa::Leaf l;
    l.sans = {"db-7.internal", "10.1.2.3"};
    l.not_before = clock_.Now() - absl::Hours(1);
    l.not_after = clock_.Now() + absl::Hours(24 * 90 - 1);
    return l;
  }
  // A chain for the pending key of a fresh RequestCertificate.
  std::string Requested(const TestCa& ca, const TestCa::Leaf& l) {
    absl::StatusOr<CommandResult> r = Request();
    EXPECT_THAT(r, IsOk());
    EVP_PKEY* k = TestCa::CsrKey(r->certificate().csr_pem());
    std::string chain = ca.Issue(k, l);
    EVP_PKEY_free(k);
    return chain;
  }
  std::string Current() { return fs_.ReadSymlink(std::string(kDir) + "/current").value_or("-"); }
  void ExpectRefused(const absl::StatusOr<CommandResult>& r, absl::string_view why) {
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(ReasonOf(r.status()), why) << r.status();
  }

  platform::FakeClock clock_;
  platform::FakeFileSystem fs_;
  platform::FakeServiceControl services_;
  // What the agent's listener serves, for AGENT_IDENTITY targets.
  std::function<absl::StatusOr<std::string>()> served_;
  absl::StatusOr<std::string> Served() { return served_ ? served_() : std::string(); }
  TestCa ca_;
  TestCa other_ca_;
  std::unique_ptr<CertificateManager> manager_;
};

TEST_F(CertManagerTest, RequestMakesAFreshKeyEveryTime) {
  absl::StatusOr<CommandResult> a = Request();
  ASSERT_THAT(a, IsOk());
  const auto& c = a->certificate();
  EXPECT_NE(c.csr_pem().find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
  EXPECT_EQ(c.spki_sha256().size(), 64u);
  EXPECT_EQ(c.key_type(), "ecdsa-p256");
  EVP_PKEY* k = TestCa::CsrKey(c.csr_pem());
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(SpkiSha256(k), c.spki_sha256());
  EVP_PKEY_free(k);
  absl::StatusOr<CommandResult> b = Request();
  ASSERT_THAT(b, IsOk());
  EXPECT_NE(b->certificate().spki_sha256(), c.spki_sha256()) << "a key was reused";
  // The private key stays on the node, in the pending slot.
  EXPECT_TRUE(fs_.FileSize("/state/certs/pg.pending.key").ok());
  EXPECT_EQ(c.csr_pem().find("PRIVATE"), std::string::npos);
  EXPECT_TRUE(manager_->Status()[0].pending());
}

TEST_F(CertManagerTest, RequestRefusesUnknownTargetsAndForeignSans) {
  ExpectRefused(Request("nope"), reason::kCertTargetUnknown);
  nodeward::v1::Command c;
  c.mutable_request_certificate()->set_target("pg");
  c.mutable_request_certificate()->add_sans("evil.example.com");
  ExpectRefused(Run(c), reason::kCertSanNotAllowed);
}

TEST_F(CertManagerTest, ValidChainIsInstalledAsANewVersion) {
  const std::string chain = Requested(ca_, Valid());
  absl::StatusOr<CommandResult> r = Install(chain);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->certificate().version(), 1u);
  EXPECT_EQ(Current(), "v1");
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value(), chain);
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/ca.pem").value(), ca_.Pem());
  absl::StatusOr<std::string> key = fs_.ReadFile(std::string(kDir) + "/current/key.pem");
  ASSERT_THAT(key, IsOk());
  EXPECT_NE(key->find("BEGIN PRIVATE KEY"), std::string::npos);
  EXPECT_FALSE(fs_.FileSize("/state/certs/pg.pending.key").ok()) << "the pending key is used up";
  std::vector<CertificateHealth> h = manager_->Status();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].state(), CertificateHealth::OK);
  EXPECT_EQ(h[0].version(), 1u);
  EXPECT_EQ(h[0].spki_sha256(), r->certificate().spki_sha256());
  EXPECT_FALSE(h[0].pending());
  ASSERT_EQ(h[0].sans_size(), 2);
  // The same chain again: its pending key is gone.
  ExpectRefused(Install(chain), reason::kCertNoPendingKey);
}

TEST_F(CertManagerTest, EveryBadChainIsRefusedAndTheOldOneStays) {
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  ASSERT_EQ(Current(), "v1");
  const std::string served = fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value();

  ExpectRefused(Install(Requested(other_ca_, Valid())), reason::kCertChainUntrusted);
  TestCa::Leaf expired = Valid();
  expired.not_before = clock_.Now() - absl::Hours(48);
  expired.not_after = clock_.Now() - absl::Hours(1);
  ExpectRefused(Install(Requested(ca_, expired)), reason::kCertExpired);
  TestCa::Leaf future = Valid();
  future.not_before = clock_.Now() + absl::Hours(1);  // beyond the 300 s skew
  ExpectRefused(Install(Requested(ca_, future)), reason::kCertNotYetValid);
  TestCa::Leaf wrong_san = Valid();
  wrong_san.sans = {"db-7.internal", "evil.example.com"};
  ExpectRefused(Install(Requested(ca_, wrong_san)), reason::kCertSanNotAllowed);
  TestCa::Leaf client_only = Valid();
  client_only.eku = "clientAuth";
  ExpectRefused(Install(Requested(ca_, client_only)), reason::kCertUsageWrong);
  // A certificate for another key than the pending one.
  ASSERT_THAT(Request(), IsOk());
  EVP_PKEY* stranger = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  const std::string mismatch = ca_.Issue(stranger, Valid());
  EVP_PKEY_free(stranger);
  ExpectRefused(Install(mismatch), reason::kCertKeyMismatch);
  ExpectRefused(Install("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n"),
                reason::kCertPemInvalid);
  ExpectRefused(Install("not PEM at all"), reason::kCertPemInvalid);
  std::string hundred;
  for (int i = 0; i < 100; ++i) hundred += served;
  ExpectRefused(Install(hundred), reason::kCertChainTooLong);

  EXPECT_EQ(Current(), "v1");
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value(), served);
  EXPECT_EQ(manager_->Status()[0].state(), CertificateHealth::OK);
}

TEST_F(CertManagerTest, SkewAllowsAFreshlyIssuedCertificate) {
  TestCa::Leaf soon = Valid();
  soon.not_before = clock_.Now() + absl::Seconds(120);  // the CA's clock is ahead
  EXPECT_THAT(Install(Requested(ca_, soon)), IsOk());
}

TEST_F(CertManagerTest, ClientTargetsNeedClientAuth) {
  Make(CertificateTarget::CLIENT);
  TestCa::Leaf server_only = Valid();
  ExpectRefused(Install(Requested(ca_, server_only)), reason::kCertUsageWrong);
  TestCa::Leaf client = Valid();
  client.eku = "clientAuth";
  EXPECT_THAT(Install(Requested(ca_, client)), IsOk());
}

TEST_F(CertManagerTest, VersionsRotateAndThePreviousIsKept) {
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  EXPECT_EQ(Current(), "v2");
  EXPECT_TRUE(fs_.ReadFile(std::string(kDir) + "/v1/chain.pem").ok()) << "the previous is kept";
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  EXPECT_EQ(Current(), "v3");
  EXPECT_TRUE(fs_.ReadFile(std::string(kDir) + "/v2/chain.pem").ok());
  EXPECT_FALSE(fs_.ReadFile(std::string(kDir) + "/v1/chain.pem").ok()) << "older ones go";
}

// threats.md 41: a failure (or a kill) at any step of an install leaves the
// old complete version current; the next attempt installs the new one.
TEST_F(CertManagerTest, AFailureAtAnyInstallStepKeepsTheOldVersion) {
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  const std::string served = fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value();
  // The steps that write: the version directory, key, chain, CA, the swap.
  for (int step = 0; step < 5; ++step) {
    SCOPED_TRACE(step);
    const std::string chain = Requested(ca_, Valid());
    fs_.FailAfter(step, absl::StatusCode::kResourceExhausted);
    absl::StatusOr<CommandResult> r = Install(chain);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(ReasonOf(r.status()), reason::kCertStoreFailed) << r.status();
    EXPECT_EQ(Current(), "v1");
    EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value(), served);
    EXPECT_TRUE(fs_.ReadFile(std::string(kDir) + "/current/key.pem").ok());
    fs_.ClearFailures();
  }
  const std::string chain = Requested(ca_, Valid());
  ASSERT_THAT(Install(chain), IsOk());
  EXPECT_EQ(Current(), "v2");
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value(), chain);
}

TEST_F(CertManagerTest, AForeignFileAtTheTargetIsNotTouched) {
  fs_.SetContent(std::string(kDir) + "/current", "someone else's file");
  ExpectRefused(Install(Requested(ca_, Valid())), reason::kCertTargetForeign);
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current").value(), "someone else's file");
  EXPECT_EQ(manager_->Status()[0].state(), CertificateHealth::INVALID);
}

// A symlink planted where the next version goes would have the install
// write the key through it (into /etc, say): refused, nothing written.
TEST_F(CertManagerTest, APlantedSymlinkAtTheNextVersionIsNotFollowed) {
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  ASSERT_THAT(fs_.ReplaceSymlink(std::string(kDir) + "/v2", "/etc/ssl/private"), IsOk());
  ExpectRefused(Install(Requested(ca_, Valid())), reason::kCertTargetForeign);
  EXPECT_EQ(Current(), "v1");
  EXPECT_FALSE(fs_.Exists("/etc/ssl/private/key.pem"));
  EXPECT_TRUE(manager_->Status()[0].pending()) << "the pending key stays for a retry";
}

TEST_F(CertManagerTest, TheKeyGetsTheTargetsGroup) {
  Make(CertificateTarget::SERVER, {}, "ssl-cert");
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  EXPECT_EQ(fs_.Group(std::string(kDir) + "/v1/key.pem"), "ssl-cert");
  // A group that does not exist: the new version is not made current.
  fs_.SetKnownGroups({});
  absl::StatusOr<CommandResult> r = Install(Requested(ca_, Valid()));
  ExpectRefused(r, reason::kCertStoreFailed);
  EXPECT_NE(r.status().message().find("ssl-cert"), absl::string_view::npos) << r.status();
  EXPECT_EQ(Current(), "v1");
}

// The CA the agent checks orchestrators against (issue 15 point 5): it may
// gain CAs, and may not lose the one the orchestrator sending the command
// chains to (the orchestrator would lock itself out).
TEST_F(CertManagerTest, TheClientCaRotatesWithoutLockingTheOrchestratorOut) {
  constexpr char kFile[] = "/var/lib/nodeward/tls/client-ca.pem";
  fs_.SetContent(kFile, ca_.Pem());
  Make(CertificateTarget::SERVER, {}, "", kFile);
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  TestCa::Leaf l = Valid();
  l.sans = {"orchestrator.internal"};
  l.eku = "clientAuth";
  const std::string orchestrator = ca_.Issue(k, l);
  EVP_PKEY_free(k);
  auto update = [&](const std::string& bundle, const std::string& peer) {
    VerifiedCommand v;
    v.command.mutable_update_ca_bundle()->set_client_ca(true);
    v.command.mutable_update_ca_bundle()->set_ca_bundle_pem(bundle);
    v.peer_chain_pem = peer;
    return manager_->Apply(v);
  };
  ExpectRefused(update(other_ca_.Pem(), orchestrator), reason::kCertCaDropsCurrent);
  ExpectRefused(update(ca_.Pem() + other_ca_.Pem(), ""), reason::kCertCaDropsCurrent);
  ExpectRefused(update("garbage", orchestrator), reason::kCertPemInvalid);
  EXPECT_EQ(fs_.ReadFile(kFile).value(), ca_.Pem()) << "a refusal changed the file";
  absl::StatusOr<CommandResult> r = update(ca_.Pem() + other_ca_.Pem(), orchestrator);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->certificate().target(), kClientCaTarget);
  EXPECT_EQ(fs_.ReadFile(kFile).value(), ca_.Pem() + other_ca_.Pem());
  EXPECT_EQ(fs_.ReadFile(std::string(kFile) + ".previous").value(), ca_.Pem());
  const std::vector<CertificateHealth> status = manager_->Status();
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[1].target(), kClientCaTarget);
  EXPECT_EQ(status[1].state(), CertificateHealth::OK);
  // Not managed: refused as disabled.
  Make();
  ExpectRefused(update(ca_.Pem(), orchestrator), reason::kCapabilityDisabled);
}

TEST_F(CertManagerTest, TheHorizonFollowsTheClock) {
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());  // 90 days from now - 1 h
  CertificateHealth h = manager_->Status()[0];
  EXPECT_EQ(h.state(), CertificateHealth::OK);
  const absl::Time nb = absl::FromUnixSeconds(h.not_before().seconds());
  const absl::Time na = absl::FromUnixSeconds(h.not_after().seconds());
  const absl::Time due = absl::FromUnixSeconds(h.renewal_due_at().seconds());
  EXPECT_LE(due, nb + (na - nb) * 2 / 3);
  EXPECT_GE(due, nb + (na - nb) * 2 / 3 - (na - nb) * 0.05 - absl::Seconds(1));
  clock_.Set(due + absl::Seconds(1));
  EXPECT_EQ(manager_->Status()[0].state(), CertificateHealth::RENEWAL_DUE);
  clock_.Set(na - absl::Hours(24 * 8));  // < 10% of 90 days left
  EXPECT_EQ(manager_->Status()[0].state(), CertificateHealth::EXPIRING);
  clock_.Set(na);  // a VM paused past not_after
  EXPECT_EQ(manager_->Status()[0].state(), CertificateHealth::EXPIRED);
}

// Point 3: the reload runs after the swap and sees the new files; a failed
// reload rolls back to the previous version, reloads again, and health says
// RELOAD_FAILED until a good install.
TEST_F(CertManagerTest, AFailedReloadRollsBackToThePreviousVersion) {
  nodeward::v1::ReloadAction reload;
  reload.set_unit("postgresql.service");
  Make(CertificateTarget::SERVER, reload);
  std::vector<std::string> seen;
  services_.on_reload = [&] {
    seen.push_back(Current());
    return absl::OkStatus();
  };
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  EXPECT_EQ(services_.calls, std::vector<std::string>{"reload postgresql.service"});
  EXPECT_EQ(seen, std::vector<std::string>{"v1"});
  const std::string served = fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value();

  services_.on_reload = [&] {
    seen.push_back(Current());
    return Current() == "v2" ? absl::FailedPreconditionError("reload postgresql.service: job failed")
                             : absl::OkStatus();
  };
  absl::StatusOr<CommandResult> r = Install(Requested(ca_, Valid()));
  ExpectRefused(r, reason::kCertReloadFailed);
  EXPECT_NE(r.status().message().find("rolled back to v1 and reloaded"), std::string::npos)
      << r.status();
  EXPECT_EQ(seen, (std::vector<std::string>{"v1", "v2", "v1"}));
  EXPECT_EQ(Current(), "v1");
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value(), served);
  CertificateHealth h = manager_->Status()[0];
  EXPECT_EQ(h.state(), CertificateHealth::RELOAD_FAILED);
  EXPECT_NE(h.reload_error().find("job failed"), std::string::npos);
  EXPECT_TRUE(h.pending()) << "the key stays for a retry";

  services_.on_reload = nullptr;  // the service is fixed
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  EXPECT_EQ(Current(), "v2");
  EXPECT_EQ(manager_->Status()[0].state(), CertificateHealth::OK);
}

// Point 4 on fakes: the agent's identity counts as reloaded once a new
// handshake is served the new key; if that never happens, it rolls back.
TEST_F(CertManagerTest, AgentIdentityWaitsForTheServedKeyOrRollsBack) {
  nodeward::v1::ReloadAction a;
  a.set_how(nodeward::v1::ReloadAction::AGENT_IDENTITY);
  Make(CertificateTarget::SERVER, a);
  // The provider picks the files up on its second look.
  int looks = 0;
  std::string installed;
  served_ = [&]() -> absl::StatusOr<std::string> {
    return ++looks >= 2 ? installed : std::string("old");
  };
  absl::StatusOr<CommandResult> req = Request();
  ASSERT_THAT(req, IsOk());
  installed = req->certificate().spki_sha256();
  EVP_PKEY* k = TestCa::CsrKey(req->certificate().csr_pem());
  const std::string chain = ca_.Issue(k, Valid());
  EVP_PKEY_free(k);
  ASSERT_THAT(Install(chain), IsOk());
  EXPECT_GE(looks, 2);
  // Never served: rolled back to v1 (which is then served).
  const std::string v1 = installed;
  served_ = [&]() -> absl::StatusOr<std::string> { return Current() == "v1" ? v1 : "stale"; };
  absl::StatusOr<CommandResult> r = Install(Requested(ca_, Valid()));
  ExpectRefused(r, reason::kCertReloadFailed);
  EXPECT_EQ(Current(), "v1");
  EXPECT_NE(r.status().message().find("rolled back to v1 and reloaded"), std::string::npos)
      << r.status();
}

TEST_F(CertManagerTest, SignalAndRestartActions) {
  nodeward::v1::ReloadAction a;
  a.set_unit("pgbouncer.service");
  a.set_how(nodeward::v1::ReloadAction::SIGNAL);
  Make(CertificateTarget::SERVER, a);
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  a.set_how(nodeward::v1::ReloadAction::RESTART);
  Make(CertificateTarget::SERVER, a);
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  EXPECT_EQ(services_.calls, (std::vector<std::string>{"signal 1 pgbouncer.service",
                                                       "restart pgbouncer.service"}));
}

// Point 5, threat 46: a bundle may gain a CA before the leaves switch; one
// that drops the CA the certificate in force chains to is refused.
TEST_F(CertManagerTest, CaBundleRotationKeepsTheCurrentLeafVerifiable) {
  auto update = [&](const std::string& bundle) {
    nodeward::v1::Command c;
    c.mutable_update_ca_bundle()->set_target("pg");
    c.mutable_update_ca_bundle()->set_ca_bundle_pem(bundle);
    return Run(c);
  };
  ExpectRefused(update(ca_.Pem()), reason::kCertNothingInstalled);
  ASSERT_THAT(Install(Requested(ca_, Valid())), IsOk());
  const std::string chain = fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value();
  const std::string key = fs_.ReadFile(std::string(kDir) + "/current/key.pem").value();
  // Overlap: old and new CA together.
  absl::StatusOr<CommandResult> both = update(ca_.Pem() + other_ca_.Pem());
  ASSERT_THAT(both, IsOk());
  EXPECT_EQ(both->certificate().version(), 2u);
  EXPECT_EQ(Current(), "v2");
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/ca.pem").value(), ca_.Pem() + other_ca_.Pem());
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/chain.pem").value(), chain);
  EXPECT_EQ(fs_.ReadFile(std::string(kDir) + "/current/key.pem").value(), key);
  // Dropping the CA the leaf in force chains to: refused, nothing changes.
  ExpectRefused(update(other_ca_.Pem()), reason::kCertCaDropsCurrent);
  EXPECT_EQ(Current(), "v2");
  ExpectRefused(update("garbage"), reason::kCertPemInvalid);
  // Once the leaf comes from the new CA, the old one may go.
  nodeward::v1::Command c;
  c.mutable_install_certificate()->set_target("pg");
  c.mutable_install_certificate()->set_chain_pem(Requested(other_ca_, Valid()));
  c.mutable_install_certificate()->set_ca_bundle_pem(ca_.Pem() + other_ca_.Pem());
  ASSERT_THAT(Run(c), IsOk());
  EXPECT_THAT(update(other_ca_.Pem()), IsOk());
  EXPECT_EQ(Current(), "v4");
}

TEST(CertManagerConfigTest, BadTargetsAreRefused) {
  platform::FakeClock clock;
  platform::FakeFileSystem fs;
  auto make = [&](const std::string& name, const std::string& dir, const std::string& san) {
    CertificateTarget t;
    t.set_name(name);
    t.set_directory(dir);
    if (!san.empty()) t.add_allowed_sans(san);
    CertOptions o;
    o.targets = {t};
    return CertificateManager::Create({&fs, &clock, nullptr, nullptr, nullptr}, o).status();
  };
  EXPECT_THAT(make("pg", "/etc/nodeward/certs/pg", "db.internal"), IsOk());
  EXPECT_FALSE(make("PG", "/etc/x", "").ok());
  EXPECT_FALSE(make("pg", "relative/dir", "").ok());
  EXPECT_FALSE(make("pg", "/etc/../x", "").ok());
  EXPECT_FALSE(make("pg", "/etc/x", "bad name!").ok());
}

}  // namespace
}  // namespace nodeward::cert
