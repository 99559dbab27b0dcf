// Case 47: the local status socket serves allowed peers read-only and stays
// bounded under a flood or a peer that never reads.
#include "agent/server/status_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace nodeward {
namespace {

using testing::IsOk;

std::string TempDir() {
  char tmpl[] = "/tmp/nw-status-XXXXXX";
  return mkdtemp(tmpl);
}

int Connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

class StatusSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    path_ = dir_ + "/status.sock";
  }
  void TearDown() override {
    server_.Stop();
    rmdir(dir_.c_str());
  }
  std::string dir_, path_;
  StatusSocketServer server_{[] { return std::string("{\"state\":\"SERVING\"}"); }};
};

TEST_F(StatusSocketTest, AllowedPeerReadsStatusAndSocketIs0660) {
  StatusSocketOptions o{path_, {static_cast<uint32_t>(getuid())}, {}, 0};
  ASSERT_THAT(server_.Start(o), IsOk());
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadAll(fd), "{\"state\":\"SERVING\"}\n");
}

TEST_F(StatusSocketTest, DisallowedPeerIsRefused) {
  StatusSocketOptions o{path_, {}, {}, 0};
  ASSERT_THAT(server_.Start(o), IsOk());
  if (getuid() != 0) {
    int fd = Connect(path_);
    ASSERT_GE(fd, 0);
    EXPECT_NE(ReadAll(fd).find("PERMISSION_DENIED"), std::string::npos);
    return;
  }
  // As root (uid 0 is always allowed): ask from an unprivileged child.
  chmod(dir_.c_str(), 0755);
  chmod(path_.c_str(), 0666);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    int fd = Connect(path_);
    if (fd < 0) _exit(4);
    std::string got = ReadAll(fd);
    _exit(got.find("PERMISSION_DENIED") != std::string::npos &&
                  got.find("SERVING") == std::string::npos
              ? 0
              : 5);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(StatusSocketTest, SilentPeersAndFloodStayBounded) {
  StatusSocketOptions o{path_, {static_cast<uint32_t>(getuid())}, {}, 0};
  ASSERT_THAT(server_.Start(o), IsOk());
  // Peers that connect and never read: the server writes, closes, moves on.
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(Connect(path_));
  for (int i = 0; i < 200; ++i) {
    int fd = Connect(path_);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(ReadAll(fd), "{\"state\":\"SERVING\"}\n");
  }
  for (int fd : idle) close(fd);
}

// Socket activation (nodeward-status.socket): the service manager bound the
// socket with its own owner and mode; the server serves on it as is and
// leaves the file alone when it stops (systemd owns it).
TEST_F(StatusSocketTest, ServesAnInheritedSocketAndLeavesItsFileAlone) {
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path_.c_str());
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(chmod(path_.c_str(), 0640), 0);
  ASSERT_EQ(listen(lfd, 16), 0);
  StatusSocketOptions o{path_, {static_cast<uint32_t>(getuid())}, {}, 0};
  o.inherited_fd = lfd;
  ASSERT_THAT(server_.Start(o), IsOk());
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);  // not chmodded
  int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadAll(fd), "{\"state\":\"SERVING\"}\n");
  server_.Stop();
  EXPECT_EQ(lstat(path_.c_str(), &st), 0);  // still there
  unlink(path_.c_str());
}

TEST_F(StatusSocketTest, RefusesToReplaceANonSocket) {
  FILE* f = fopen(path_.c_str(), "w");
  fclose(f);
  EXPECT_THAT(server_.Start(StatusSocketOptions{path_, {}, {}, 0}),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition));
  unlink(path_.c_str());
}

}  // namespace
}  // namespace nodeward
