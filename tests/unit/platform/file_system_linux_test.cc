// LinuxFileSystem::ReadFileInto: a secret goes from the file straight into the
// caller's buffer, and a file too large for it leaves nothing there.
#include "platform/linux/file_system_linux.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::IsOk;
using testing::StatusIs;

class ReadFileIntoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeward-fs-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    unlink((dir_ + "/f").c_str());
    rmdir(dir_.c_str());
  }
  std::string Write(const std::string& data) {
    std::ofstream(dir_ + "/f", std::ios::binary) << data;
    return dir_ + "/f";
  }
  LinuxFileSystem fs_;
  std::string dir_;
};

TEST_F(ReadFileIntoTest, ReadsTheWholeFileUpToCapacity) {
  char buf[16];
  auto n = fs_.ReadFileInto(Write("secret"), buf, sizeof(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(std::string(buf, *n), "secret");
  n = fs_.ReadFileInto(Write(std::string(16, 'k')), buf, sizeof(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 16u);
  n = fs_.ReadFileInto(Write(""), buf, sizeof(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 0u);
}

TEST_F(ReadFileIntoTest, LargerThanCapacityIsOutOfRangeAndLeavesNothing) {
  char buf[16];
  EXPECT_THAT(fs_.ReadFileInto(Write(std::string(17, 'k')), buf, sizeof(buf)),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(std::string(buf, sizeof(buf)), std::string(sizeof(buf), '\0'));
}

TEST_F(ReadFileIntoTest, MissingFileIsNotFound) {
  char buf[4];
  EXPECT_THAT(fs_.ReadFileInto(dir_ + "/absent", buf, sizeof(buf)),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace nodeward::platform
