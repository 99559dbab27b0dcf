#include "agent/command/trust_store.h"

#include "gtest/gtest.h"
#include "tests/common/command_factory.h"
#include "tests/common/status_matchers.h"

namespace nodeward {
namespace {

using testing::CommandFactory;
using testing::IsOk;
using testing::StatusIs;

TEST(TrustStoreTest, BuildsAndFindsKeysByHashId) {
  CommandFactory f;
  auto store = TrustStore::Build(f.Trust());
  ASSERT_THAT(store, IsOk());
  EXPECT_NE((*store)->FindKey(f.orchestrator(0).KeyId()), nullptr);
  EXPECT_EQ((*store)->FindKey(f.stranger().KeyId()), nullptr);
  EXPECT_EQ((*store)->key_count(), 3u);
}

TEST(TrustStoreTest, RejectsBadConfigs) {
  CommandFactory f;
  auto t = f.Trust();
  t.mutable_keys(0)->set_public_key("short");
  EXPECT_THAT(TrustStore::Build(t), StatusIs(absl::StatusCode::kInvalidArgument));
  t = f.Trust();
  t.mutable_keys(0)->set_key_id("00");
  EXPECT_THAT(TrustStore::Build(t), StatusIs(absl::StatusCode::kInvalidArgument));
  t = f.Trust();
  *t.add_keys() = t.keys(0);
  EXPECT_THAT(TrustStore::Build(t), StatusIs(absl::StatusCode::kInvalidArgument));
  t = f.Trust();
  t.mutable_policies(0)->set_command_type("format_everything");
  EXPECT_THAT(TrustStore::Build(t), StatusIs(absl::StatusCode::kInvalidArgument));
  t = f.Trust(4);  // only 3 keys hold the role
  EXPECT_THAT(TrustStore::Build(t), StatusIs(absl::StatusCode::kInvalidArgument));
  t = f.Trust();
  t.mutable_keys(0)->clear_roles();
  EXPECT_THAT(TrustStore::Build(t), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace nodeward
