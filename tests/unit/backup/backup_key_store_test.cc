// ProvisionBackupKey: validated before anything is written, idempotent,
// private keys 0600 and only when they match.
#include "agent/backup/backup_key_store.h"

#include <cstring>

#include "agent/backup/backup_keys.h"
#include "gtest/gtest.h"
#include "tests/common/backup_test_util.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_file_system.h"

namespace nodeward::backup {
namespace {

using testing::IsOk;
using testing::StatusIs;

using testing::K;

std::optional<SecureBuffer> Pem(const RsaPrivateKey& k) { return k.ToPkcs8Pem().value(); }

class BackupKeyStoreTest : public ::testing::Test {
 protected:
  platform::FakeFileSystem fs_;
  BackupKeyStore store_{&fs_, "/keys"};
  const std::string id_a_ = K().a.public_key().key_id_hex();
};

TEST_F(BackupKeyStoreTest, InstallsPublicKeyAndIsIdempotent) {
  auto r = store_.Install("svc-1", K().a.public_key().ToPem(), std::nullopt);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(r->key_id_hex, id_a_);
  EXPECT_EQ(fs_.Content("/keys/svc-1/current"), id_a_ + "\n");
  EXPECT_EQ(fs_.Content("/keys/svc-1/" + id_a_ + ".pub"), K().a.public_key().ToPem());
  EXPECT_FALSE(fs_.Exists("/keys/svc-1/" + id_a_ + ".key"));
  auto again = store_.Install("svc-1", K().a.public_key().ToPem(), std::nullopt);
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->changed);
}

TEST_F(BackupKeyStoreTest, InstallsMatchingPrivateKey) {
  auto r = store_.Install("svc-1", K().a.public_key().ToPem(), Pem(K().a));
  ASSERT_THAT(r, IsOk());
  auto pem = fs_.Content("/keys/svc-1/" + id_a_ + ".key");
  EXPECT_NE(pem.find("BEGIN PRIVATE KEY"), std::string::npos);
}

// Checking that a resent private key is already there must not read it back:
// its text would be left in ordinary (unlocked, dumpable) memory.
TEST_F(BackupKeyStoreTest, ResentPrivateKeyIsNeverReadBack) {
  ASSERT_THAT(store_.Install("svc-1", K().a.public_key().ToPem(), Pem(K().a)), IsOk());
  auto again = store_.Install("svc-1", K().a.public_key().ToPem(), Pem(K().a));
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->changed);
  for (const std::string& path : fs_.reads()) {
    EXPECT_EQ(path.find(".key"), std::string::npos) << path;
  }
}

TEST_F(BackupKeyStoreTest, RotationKeepsOldKeysAndMovesCurrent) {
  ASSERT_THAT(store_.Install("svc-1", K().a.public_key().ToPem(), std::nullopt), IsOk());
  ASSERT_THAT(store_.Install("svc-1", K().b.public_key().ToPem(), std::nullopt), IsOk());
  EXPECT_EQ(fs_.Content("/keys/svc-1/current"), K().b.public_key().key_id_hex() + "\n");
  EXPECT_TRUE(fs_.Exists("/keys/svc-1/" + id_a_ + ".pub"));
}

TEST_F(BackupKeyStoreTest, RefusalsWriteNothing) {
  EXPECT_THAT(store_.Install("svc-1", K().a.public_key().ToPem(), Pem(K().b)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_.Install("../etc", K().a.public_key().ToPem(), std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_.Install("Svc", K().a.public_key().ToPem(), std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_.Install("svc-1", "not a key", std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto junk = SecureBuffer::Create(5).value();
  std::memcpy(junk.data(), "junk!", 5);
  EXPECT_THAT(store_.Install("svc-1", K().a.public_key().ToPem(), std::move(junk)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(fs_.Exists("/keys/svc-1/current"));
  EXPECT_FALSE(fs_.Exists("/keys/svc-1/" + id_a_ + ".pub"));
}

TEST_F(BackupKeyStoreTest, WriteFailureIsReported) {
  fs_.FailNext(absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(store_.Install("svc-1", K().a.public_key().ToPem(), std::nullopt),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(fs_.Exists("/keys/svc-1/current"));
}

}  // namespace
}  // namespace nodeward::backup
