// SIGKILL at each step of a certificate install, on real files (issue 15,
// threats.md 41): a child process runs the install with the real
// LinuxFileSystem and kills itself with SIGKILL just before, or just after,
// its k-th file operation; then a new manager (the restarted agent) reads
// the directory. Whatever k, `current` names one complete version whose key
// matches its chain, old or new, and the next install works.
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "agent/cert/cert_manager.h"
#include "agent/cert/x509.h"
#include "gtest/gtest.h"
#include "platform/linux/file_system_linux.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_ca.h"
#include "tests/fakes/fake_clock.h"

namespace nodeward::cert {
namespace {

using nodeward::testing::IsOk;
using nodeward::testing::TestCa;
using nodeward::v1::CertificateHealth;
using nodeward::v1::CertificateTarget;
using nodeward::v1::CommandResult;

// The real file system, which SIGKILLs the process around its k-th mutating
// operation (kill_before: just before it; else just after it returned).
class KillingFileSystem final : public platform::FileSystem {
 public:
  KillingFileSystem(int kill_at, bool kill_before) : kill_at_(kill_at), before_(kill_before) {}
  int ops() const { return ops_; }

  absl::StatusOr<std::string> ReadFile(const std::string& p) override { return fs_.ReadFile(p); }
  absl::StatusOr<size_t> ReadFileInto(const std::string& p, char* out, size_t cap) override {
    return fs_.ReadFileInto(p, out, cap);
  }
  absl::Status WriteFileAtomically(const std::string& p, absl::string_view d, uint32_t m) override {
    return Step([&] { return fs_.WriteFileAtomically(p, d, m); });
  }
  absl::StatusOr<platform::AppendableFilePtr> OpenForAppend(const std::string& p,
                                                            uint32_t m) override {
    return fs_.OpenForAppend(p, m);
  }
  absl::Status MakeDirectory(const std::string& p, uint32_t m) override {
    return Step([&] { return fs_.MakeDirectory(p, m); });
  }
  absl::Status RemoveFile(const std::string& p) override {
    return Step([&] { return fs_.RemoveFile(p); });
  }
  absl::StatusOr<std::vector<Entry>> ListTree(const std::string& d) override {
    return fs_.ListTree(d);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& p) override { return fs_.FileSize(p); }
  absl::Status OverwriteInPlace(const std::string& p, absl::string_view d) override {
    return Step([&] { return fs_.OverwriteInPlace(p, d); });
  }
  absl::Status RemoveDirectory(const std::string& p) override {
    return Step([&] { return fs_.RemoveDirectory(p); });
  }
  absl::Status ReplaceSymlink(const std::string& l, const std::string& t) override {
    return Step([&] { return fs_.ReplaceSymlink(l, t); });
  }
  absl::StatusOr<std::string> ReadSymlink(const std::string& p) override {
    return fs_.ReadSymlink(p);
  }
  absl::Status ChangeGroup(const std::string& p, const std::string& g) override {
    return Step([&] { return fs_.ChangeGroup(p, g); });
  }

 private:
  template <typename F>
  absl::Status Step(F f) {
    const int k = ops_++;
    if (k == kill_at_ && before_) raise(SIGKILL);
    absl::Status s = f();
    if (k == kill_at_ && !before_) raise(SIGKILL);
    return s;
  }
  platform::LinuxFileSystem fs_;
  const int kill_at_;
  const bool before_;
  int ops_ = 0;
};

class CertSigkillTest : public ::testing::Test {
 protected:
  CertSigkillTest() : ca_("test CA", clock_.Now()) {}
  void SetUp() override {
    char tmpl[] = "/tmp/nodeward-cert-kill.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ASSERT_THAT(real_.WriteFileAtomically(root_ + "/ca.pem", ca_.Pem(), 0644), IsOk());
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf '" + root_ + "'").c_str()), 0); }

  std::unique_ptr<CertificateManager> Manager(platform::FileSystem* fs) {
    CertificateTarget t;
    t.set_name("pg");
    t.set_directory(root_ + "/pg");
    t.add_allowed_sans("db-7.internal");
    t.set_ca_bundle_file(root_ + "/ca.pem");
    CertOptions o;
    o.targets = {t};
    o.state_dir = root_ + "/state";
    o.node_id = "db-7";
    return CertificateManager::Create({fs, &clock_, nullptr, nullptr, nullptr}, o).value();
  }
  // RequestCertificate in this process; the chain for its key.
  std::string Requested(CertificateManager* m) {
    VerifiedCommand v;
    v.command.mutable_request_certificate()->set_target("pg");
    absl::StatusOr<CommandResult> r = m->Apply(v);
    EXPECT_THAT(r, IsOk());
    EVP_PKEY* k = TestCa::CsrKey(r->certificate().csr_pem());
    TestCa::Leaf l;
    l.sans = {"db-7.internal"};
    l.not_before = clock_.Now() - absl::Hours(1);
    l.not_after = clock_.Now() + absl::Hours(24 * 90);
    std::string chain = ca_.Issue(k, l);
    EVP_PKEY_free(k);
    return chain;
  }
  static absl::StatusOr<CommandResult> Install(CertificateManager* m, const std::string& chain) {
    VerifiedCommand v;
    v.command.mutable_install_certificate()->set_target("pg");
    v.command.mutable_install_certificate()->set_chain_pem(chain);
    return m->Apply(v);
  }
  // What a service would load now: current/key.pem and current/chain.pem,
  // which must be one pair. Returns the chain.
  std::string Served() {
    const std::string dir = root_ + "/pg/current";
    absl::StatusOr<std::string> chain = real_.ReadFile(dir + "/chain.pem");
    absl::StatusOr<std::string> key = real_.ReadFile(dir + "/key.pem");
    EXPECT_THAT(chain, IsOk());
    EXPECT_THAT(key, IsOk());
    if (!chain.ok() || !key.ok()) return "";
    BIO* b = BIO_new_mem_buf(chain->data(), static_cast<int>(chain->size()));
    X509* c = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(key->data(), static_cast<int>(key->size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    EXPECT_NE(c, nullptr) << "a torn chain.pem";
    EXPECT_NE(k, nullptr) << "a torn key.pem";
    if (c != nullptr && k != nullptr) {
      EXPECT_EQ(X509_check_private_key(c, k), 1) << "key of one version, chain of another";
    }
    X509_free(c);
    EVP_PKEY_free(k);
    return *chain;
  }

  platform::FakeClock clock_;
  platform::LinuxFileSystem real_;
  TestCa ca_;
  std::string root_;
};

TEST_F(CertSigkillTest, EveryKillPointLeavesACompleteOldOrNewPair) {
  std::unique_ptr<CertificateManager> first = Manager(&real_);
  ASSERT_THAT(Install(first.get(), Requested(first.get())), IsOk());
  ASSERT_THAT(Install(first.get(), Requested(first.get())), IsOk());
  // How many file operations an install makes (each is a kill point); from
  // v3 on, an install also removes the version before the previous.
  int steps = 0;
  {
    KillingFileSystem counting(-1, false);
    std::unique_ptr<CertificateManager> m = Manager(&counting);
    const std::string chain = Requested(m.get());
    const int before = counting.ops();
    ASSERT_THAT(Install(m.get(), chain), IsOk());
    steps = counting.ops() - before;
  }
  // mkdir, key, chain, ca, swap, the old version's 3 files and directory,
  // the pending key.
  ASSERT_EQ(steps, 10);
  int killed = 0;
  for (int k = 0; k < steps; ++k) {
    for (bool before : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "kill " << (before ? "before" : "after") << " op " << k);
      std::unique_ptr<CertificateManager> setup = Manager(&real_);
      const std::string old_chain = Served();
      const std::string new_chain = Requested(setup.get());
      setup.reset();
      const pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        KillingFileSystem dying(k, before);
        std::unique_ptr<CertificateManager> m = Manager(&dying);
        (void)Install(m.get(), new_chain);
        _exit(0);  // the kill point was not reached
      }
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ++killed;
      // The restarted agent: a complete pair, the old or the new.
      const std::string served = Served();
      EXPECT_TRUE(served == old_chain || served == new_chain) << "neither old nor new";
      std::unique_ptr<CertificateManager> restarted = Manager(&real_);
      const CertificateHealth h = restarted->Status()[0];
      EXPECT_EQ(h.state(), CertificateHealth::OK) << h.error();
      // And the next install goes through (a leftover version is reused).
      if (served == old_chain) {
        ASSERT_THAT(Install(restarted.get(), new_chain), IsOk());
        EXPECT_EQ(Served(), new_chain);
      }
    }
  }
  EXPECT_EQ(killed, 2 * steps) << "some kill points were not reached";
}

}  // namespace
}  // namespace nodeward::cert
