#include "platform/linux/systemd_mounts.h"

#include "gtest/gtest.h"

namespace nodeward::platform {
namespace {

// The names systemd-escape --path --suffix=mount gives (checked against
// systemd 252's systemd-escape).
TEST(MountUnitNameTest, EscapesAsSystemdDoes) {
  EXPECT_EQ(MountUnitName("/srv/nodeward/pg"), "srv-nodeward-pg.mount");
  EXPECT_EQ(MountUnitName("/srv/node-ward/pg_1"), "srv-node\\x2dward-pg_1.mount");
  EXPECT_EQ(MountUnitName("/srv/.hidden/a b"), "srv-.hidden-a\\x20b.mount");
  EXPECT_EQ(MountUnitName("/.x"), "\\x2ex.mount");
  EXPECT_EQ(MountUnitName("/srv/ü"), "srv-\\xc3\\xbc.mount");
  EXPECT_EQ(MountUnitName("/"), "-.mount");
}

}  // namespace
}  // namespace nodeward::platform
