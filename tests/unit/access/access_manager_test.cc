// Operator access on fakes (issue 16): window arithmetic, expiry, revoke,
// a login outside every window, a key put in by hand.
#include "agent/access/access_manager.h"

#include "absl/strings/match.h"
#include "agent/common/reason.h"
#include "agent/common/time_util.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_file_system.h"
#include "tests/fakes/fake_logins.h"

namespace nodeward::access {
namespace {

using nodeward::testing::IsOk;

// A public key (ssh-keygen -t ed25519) and the fingerprint sshd logs for it.
constexpr char kKey[] =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN25h7otKga3ZwwxQxJHeb2vwpQoAIn9NxihnloFDTrp op@test";
constexpr char kFingerprint[] = "SHA256:7lciKBtr2UkyTBJC9niHTi4/MTJj0DScGEPtG9hxgjU";
constexpr char kKeys[] = "/var/lib/nodeward-access/authorized_keys";

class AccessManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    logins_.AddAccount("nwops", 990);
    Make();
  }
  void Make() {
    AccessOptions o;
    o.keys_file = kKeys;
    o.state_file = "/state/access.pb";
    manager_ = AccessManager::Create({&fs_, &clock_, &logins_,
                                      [this](const std::string& e, const std::string& m) {
                                        audit_.push_back(e + ": " + m);
                                      }},
                                     o)
                   .value();
  }
  absl::StatusOr<nodeward::v1::CommandResult> Grant(absl::Duration for_, const std::string& key = kKey) {
    VerifiedCommand v;
    auto* g = v.command.mutable_grant_operator_access();
    g->set_operator_("alice");
    g->set_ssh_public_key(key);
    g->add_source_cidrs("10.1.0.0/16");
    g->set_reason("replication lag on db-7");
    g->set_ticket("OPS-1234");
    *g->mutable_not_after() = ToTimestamp(clock_.Now() + for_);
    return manager_->Apply(v);
  }
  platform::LoginSession Session(const std::string& id, const std::string& user, const std::string& from) {
    platform::LoginSession s;
    s.id = id;
    s.user = user;
    s.uid = user == "nwops" ? 990 : 0;
    s.remote_host = from;
    s.service = "sshd";
    s.session_class = "user";
    s.started_at = clock_.Now();
    return s;
  }
  bool Audited(absl::string_view what) {
    for (const auto& a : audit_) {
      if (absl::StrContains(a, what)) return true;
    }
    return false;
  }

  platform::FakeClock clock_;
  platform::FakeFileSystem fs_;
  platform::FakeLogins logins_;
  std::vector<std::string> audit_;
  std::unique_ptr<AccessManager> manager_;
};

TEST_F(AccessManagerTest, AGrantWritesAnExpiringKeyLine) {
  absl::StatusOr<nodeward::v1::CommandResult> r = Grant(absl::Hours(2));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->access().key_fingerprint(), kFingerprint);
  const std::string file = fs_.Content(kKeys);
  const std::string expiry = absl::FormatTime("%Y%m%d%H%M%SZ", clock_.Now() + absl::Hours(2), absl::UTCTimeZone());
  EXPECT_TRUE(absl::StrContains(file, "expiry-time=\"" + expiry + "\",from=\"10.1.0.0/16\",restrict,pty ssh-ed25519 AAAA"))
      << file;
  EXPECT_TRUE(absl::StrContains(file, "nodeward:alice:OPS-1234"));
  ASSERT_EQ(manager_->Status().windows_size(), 1);
}

TEST_F(AccessManagerTest, BadGrantsAreRefusedAndChangeNothing) {
  const std::string before = fs_.Content(kKeys);
  auto refused = [&](const absl::StatusOr<nodeward::v1::CommandResult>& r, absl::string_view why) {
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(ReasonOf(r.status()), why) << r.status();
  };
  refused(Grant(absl::Hours(9)), reason::kAccessRequestInvalid);   // beyond 8 h
  refused(Grant(-absl::Minutes(1)), reason::kAccessRequestInvalid);  // in the past
  refused(Grant(absl::Hours(1), "command=\"sh\" " + std::string(kKey)), reason::kAccessKeyInvalid);
  refused(Grant(absl::Hours(1), "ssh-ed25519 not-base64!"), reason::kAccessKeyInvalid);
  refused(Grant(absl::Hours(1), std::string(kKey) + "\nssh-ed25519 AAAA"), reason::kAccessKeyInvalid);
  EXPECT_EQ(fs_.Content(kKeys), before);
  EXPECT_EQ(manager_->Status().windows_size(), 0);
}

TEST_F(AccessManagerTest, SessionsAreJudgedAgainstTheWindows) {
  ASSERT_THAT(Grant(absl::Hours(1)), IsOk());
  logins_.Open(Session("3", "nwops", "10.1.2.3"));    // in the window
  logins_.Open(Session("4", "nwops", "192.0.2.9"));   // wrong source
  logins_.Open(Session("5", "root", "10.1.2.3"));     // not the account
  manager_->Poll();
  nodeward::v1::AccessHealth h = manager_->Status();
  ASSERT_EQ(h.sessions_size(), 3);
  EXPECT_TRUE(h.sessions(0).authorised());
  EXPECT_EQ(h.sessions(0).operator_(), "alice");
  EXPECT_EQ(h.sessions(0).ticket(), "OPS-1234");
  ASSERT_EQ(h.unauthorised_size(), 2);
  EXPECT_TRUE(Audited("access_session_opened: session 3"));
  EXPECT_TRUE(Audited("access_unauthorised: session 4"));
  // Seen once: a second poll reports nothing new; a close is audited.
  const size_t records = audit_.size();
  manager_->Poll();
  EXPECT_EQ(audit_.size(), records);
  logins_.Close("3");
  manager_->Poll();
  EXPECT_TRUE(Audited("access_session_closed: session 3"));
  // Acknowledged, they no longer count; and a restart keeps what is not.
  VerifiedCommand ack;
  ack.command.mutable_acknowledge_unauthorised_access()->set_through_event(h.unauthorised(0).event());
  ASSERT_THAT(manager_->Apply(ack), IsOk());
  EXPECT_EQ(manager_->Status().unauthorised_size(), 1);
  Make();
  EXPECT_EQ(manager_->Status().unauthorised_size(), 1);
}

TEST_F(AccessManagerTest, TheWindowEndsAtNotAfterAndTakesTheSessions) {
  ASSERT_THAT(Grant(absl::Minutes(30)), IsOk());
  logins_.Open(Session("7", "nwops", "10.1.9.9"));
  manager_->Poll();
  clock_.Advance(absl::Minutes(30));
  manager_->Poll();
  EXPECT_EQ(manager_->Status().windows_size(), 0);
  EXPECT_FALSE(absl::StrContains(fs_.Content(kKeys), "ssh-ed25519"));
  EXPECT_EQ(logins_.terminated(), std::vector<uint32_t>{990});
  EXPECT_TRUE(Audited("access_expired"));
  // A login after the end is in no window.
  logins_.Open(Session("8", "nwops", "10.1.9.9"));
  manager_->Poll();
  EXPECT_EQ(manager_->Status().unauthorised_size(), 1);
}

TEST_F(AccessManagerTest, RevokeRemovesTheKeyAndEndsSessions) {
  ASSERT_THAT(Grant(absl::Hours(1)), IsOk());
  logins_.Open(Session("9", "nwops", "10.1.0.1"));
  VerifiedCommand v;
  v.command.mutable_revoke_operator_access()->set_operator_("alice");
  absl::StatusOr<nodeward::v1::CommandResult> r = manager_->Apply(v);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->access().sessions_terminated(), 1u);
  EXPECT_FALSE(absl::StrContains(fs_.Content(kKeys), "ssh-ed25519"));
  absl::StatusOr<nodeward::v1::CommandResult> again = manager_->Apply(v);
  EXPECT_EQ(ReasonOf(again.status()), reason::kAccessNotGranted);
}

TEST_F(AccessManagerTest, AKeyPutInByHandIsUndoneAndReported) {
  fs_.SetContent(kKeys, fs_.Content(kKeys) + std::string(kKey) + "\n");
  manager_->Poll();
  EXPECT_FALSE(absl::StrContains(fs_.Content(kKeys), "ssh-ed25519"));
  nodeward::v1::AccessHealth h = manager_->Status();
  ASSERT_EQ(h.unauthorised_size(), 1);
  EXPECT_EQ(h.unauthorised(0).service(), "authorized_keys");
  EXPECT_TRUE(Audited("access_keys_tampered"));
}

}  // namespace
}  // namespace nodeward::access
