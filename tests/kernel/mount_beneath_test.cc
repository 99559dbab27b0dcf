// Kernel tier: mount points are resolved, never trusted as text (Hardening
// II point 1). Runs in a private mount namespace this test makes (unshare
// -m; nothing it mounts is visible to the host), with a tmpfs on /mnt and an
// ext4 file system on a loop file. Needs root: fails, never skips, without it.
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "platform/linux/mountinfo.h"
#include "platform/linux/volume_linux.h"
#include "tests/common/loop_device.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::IsOk;
using testing::LoopDevice;
using testing::Sh;
using testing::StatusIs;

// The mount id of the file system holding `path` (not following a final link).
uint64_t MountId(const std::string& path) {
  struct statx sx {};
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) != 0) return 0;
  return sx.stx_mnt_id;
}

bool AnyMountUnder(const std::string& dir) {
  for (const MountInfo& m : ReadMountInfo()) {
    if (m.target == dir || absl::StartsWith(m.target, dir + "/")) return true;
  }
  return false;
}

class MountBeneathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0u) << "the kernel tier needs root (CI runs as root)";
    // This process only: a private copy of the mount table.
    ASSERT_EQ(unshare(CLONE_NEWNS), 0) << "unshare(CLONE_NEWNS)";
    ASSERT_EQ(mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
    ASSERT_EQ(mount("nw-test", "/mnt", "tmpfs", 0, "mode=0755"), 0);
  }
  void SetUp() override {
    Sh("rm -rf /mnt/nw && mkdir -p -m 0755 /mnt/nw/root /mnt/nw/outside");
    root_ = "/mnt/nw/root";
    outside_ = "/mnt/nw/outside";
    disk_ = std::make_unique<LoopDevice>("/mnt/nw", "disk", 32);
    ASSERT_TRUE(disk_->ok);
    std::string out;
    ASSERT_EQ(Sh("mkfs.ext4 -q -F " + disk_->path, &out), 0) << out;
    outside_mnt_id_ = MountId(outside_);
  }
  void TearDown() override {
    // Whatever a test left mounted below /mnt/nw, deepest first.
    for (int i = 0; i < 16 && AnyMountUnder("/mnt/nw"); ++i) {
      std::vector<MountInfo> all = ReadMountInfo();
      for (auto it = all.rbegin(); it != all.rend(); ++it) {
        if (absl::StartsWith(it->target, "/mnt/nw/")) umount2(it->target.c_str(), MNT_DETACH);
      }
    }
    disk_.reset();
  }
  // Nothing was mounted outside the root, and the directory planted there
  // is still on the tmpfs.
  void ExpectOutsideUntouched() {
    EXPECT_FALSE(AnyMountUnder(outside_));
    EXPECT_EQ(MountId(outside_), outside_mnt_id_);
    if (access((outside_ + "/wal").c_str(), F_OK) == 0) {
      EXPECT_EQ(MountId(outside_ + "/wal"), outside_mnt_id_);
    }
  }
  std::string root_, outside_;
  uint64_t outside_mnt_id_ = 0;
  std::unique_ptr<LoopDevice> disk_;
};

TEST_F(MountBeneathTest, MountsTheResolvedDirectoryAndFindsItByMountId) {
  LinuxFilesystems fs({root_});
  const std::string target = root_ + "/db/wal";
  ASSERT_THAT(fs.MakeDirectories(target), IsOk());
  ASSERT_THAT(fs.Mount(disk_->path, target, FsType::kExt4, "nodev,nosuid,noatime"), IsOk());
  struct stat disk {};
  ASSERT_EQ(stat(disk_->path.c_str(), &disk), 0);
  auto at = fs.MountedAt(target);
  ASSERT_THAT(at, IsOk());
  ASSERT_TRUE(at->has_value());
  EXPECT_EQ(**at, disk.st_rdev);
  EXPECT_THAT(fs.Usage(target), IsOk());
  // A second mount on top is refused, not stacked.
  EXPECT_THAT(fs.Mount(disk_->path, target, FsType::kExt4, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // The database makes the file system's root its own: still found, and
  // unmounted (not lazily: nothing holds it).
  ASSERT_EQ(chown(target.c_str(), 1000, 1000), 0);
  EXPECT_THAT(fs.MountedAt(target), IsOk());
  EXPECT_THAT(fs.Unmount(target, /*lazy=*/false), IsOk());
  at = fs.MountedAt(target);
  ASSERT_THAT(at, IsOk());
  EXPECT_FALSE(at->has_value());
  EXPECT_THAT(fs.Unmount(target, false), IsOk());  // nothing there: nothing to do
}

TEST_F(MountBeneathTest, SymlinkedFinalComponentIsRefused) {
  LinuxFilesystems fs({root_});
  ASSERT_EQ(mkdir((root_ + "/db").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((outside_ + "/wal").c_str(), 0755), 0);
  ASSERT_EQ(symlink((outside_ + "/wal").c_str(), (root_ + "/db/wal").c_str()), 0);
  const std::string target = root_ + "/db/wal";
  auto made = fs.MakeDirectories(target);
  EXPECT_THAT(made, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(absl::StrContains(made.message(), "symbolic link")) << made;
  EXPECT_THAT(fs.Mount(disk_->path, target, FsType::kExt4, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(fs.MountedAt(target), StatusIs(absl::StatusCode::kFailedPrecondition));
  ExpectOutsideUntouched();
}

TEST_F(MountBeneathTest, SymlinkedMiddleComponentIsRefused) {
  LinuxFilesystems fs({root_});
  ASSERT_EQ(mkdir((outside_ + "/wal").c_str(), 0755), 0);
  ASSERT_EQ(symlink(outside_.c_str(), (root_ + "/db").c_str()), 0);
  const std::string target = root_ + "/db/wal";
  EXPECT_THAT(fs.MakeDirectories(target), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(fs.Mount(disk_->path, target, FsType::kExt4, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ExpectOutsideUntouched();
}

// Under systemd with RestrictSUIDSGID=yes, openat2 fails with ENOSYS (its
// seccomp filter cannot inspect struct open_how): on b361d6c every
// SetupVolume then failed with "open /: Function not implemented". The walk
// falls back to one-component openat with O_NOFOLLOW, which keeps every
// refusal. Checked in a child with the same seccomp rule.
TEST_F(MountBeneathTest, WithoutOpenat2TheWalkStillWorksAndStillRefusesLinks) {
  ASSERT_EQ(mkdir((root_ + "/db").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((outside_ + "/wal").c_str(), 0755), 0);
  ASSERT_EQ(symlink((outside_ + "/wal").c_str(), (root_ + "/db/link").c_str()), 0);
  ASSERT_EQ(symlink(outside_.c_str(), (root_ + "/mid").c_str()), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof(code) / sizeof(code[0])), code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      _exit(10);
    }
    if (syscall(SYS_openat2, AT_FDCWD, "/", nullptr, 0) != -1 || errno != ENOSYS) _exit(11);
    LinuxFilesystems fs({root_});
    const std::string target = root_ + "/db/wal";
    if (!fs.MakeDirectories(target).ok()) _exit(12);
    if (!fs.Mount(disk_->path, target, FsType::kExt4, "noatime").ok()) _exit(13);
    auto at = fs.MountedAt(target);
    if (!at.ok() || !at->has_value()) _exit(14);
    if (!fs.Unmount(target, false).ok()) _exit(15);
    absl::Status link = fs.Mount(disk_->path, root_ + "/db/link", FsType::kExt4, "");
    if (link.code() != absl::StatusCode::kFailedPrecondition ||
        !absl::StrContains(link.message(), "symbolic link")) {
      _exit(16);
    }
    if (fs.MakeDirectories(root_ + "/mid/wal").code() != absl::StatusCode::kFailedPrecondition) {
      _exit(17);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child step " << WEXITSTATUS(status) << " failed";
  ExpectOutsideUntouched();
}

TEST_F(MountBeneathTest, DotDotAndDotAreRefused) {
  LinuxFilesystems fs({root_});
  ASSERT_EQ(mkdir((root_ + "/db").c_str(), 0755), 0);
  for (const std::string& t : std::vector<std::string>{root_ + "/db/../../outside/wal", root_ + "/./db", root_ + "//db",
                              std::string("/mnt/nw/rootx/db"), std::string("/mnt/nw/outside/wal"),
                              root_}) {
    EXPECT_THAT(fs.MakeDirectories(t), StatusIs(absl::StatusCode::kInvalidArgument)) << t;
    EXPECT_THAT(fs.Mount(disk_->path, t, FsType::kExt4, ""),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << t;
  }
  ExpectOutsideUntouched();
}

TEST_F(MountBeneathTest, ComponentsNotOwnedByRootAreRefused) {
  LinuxFilesystems fs({root_});
  // A directory the database user owns: it could rename what was checked.
  ASSERT_EQ(mkdir((root_ + "/db").c_str(), 0755), 0);
  ASSERT_EQ(chown((root_ + "/db").c_str(), 1000, 1000), 0);
  auto s = fs.MakeDirectories(root_ + "/db/wal");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(absl::StrContains(s.message(), "owned by uid 1000")) << s;
  // Root's, but writable by everyone.
  ASSERT_EQ(mkdir((root_ + "/open").c_str(), 0755), 0);
  ASSERT_EQ(chmod((root_ + "/open").c_str(), 01777), 0);
  EXPECT_THAT(fs.MakeDirectories(root_ + "/open/wal"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // The allowed root itself, and what is above it, count too.
  ASSERT_EQ(chown(root_.c_str(), 1000, 1000), 0);
  EXPECT_THAT(fs.MakeDirectories(root_ + "/x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_EQ(chown(root_.c_str(), 0, 0), 0);
  ASSERT_EQ(chmod("/mnt/nw", 0777), 0);
  EXPECT_THAT(fs.MakeDirectories(root_ + "/x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_EQ(chmod("/mnt/nw", 0755), 0);
  EXPECT_THAT(fs.MakeDirectories(root_ + "/x"), IsOk());
}

TEST_F(MountBeneathTest, AComponentSwappedDuringTheWalkNeverRedirectsTheMount) {
  LinuxFilesystems fs({root_});
  // root/db flips between a real directory and a link to outside, atomically
  // (RENAME_EXCHANGE), as fast as it can, while the agent mounts root/db/wal.
  ASSERT_EQ(mkdir((root_ + "/db").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((root_ + "/db/wal").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((outside_ + "/wal").c_str(), 0755), 0);
  ASSERT_EQ(symlink(outside_.c_str(), (root_ + "/dbl").c_str()), 0);
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    const std::string a = root_ + "/db", b = root_ + "/dbl";
    while (!stop.load()) {
      renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE);
    }
  });
  int mounted = 0, refused = 0;
  for (int i = 0; i < 300; ++i) {
    absl::Status s = fs.Mount(disk_->path, root_ + "/db/wal", FsType::kExt4, "");
    if (s.ok()) {
      ++mounted;
      EXPECT_FALSE(AnyMountUnder(outside_)) << "attempt " << i;
      // Wherever the real directory is now, its wal carries the mount.
      bool found = false;
      for (const MountInfo& m : ReadMountInfo()) {
        if (m.target == root_ + "/db/wal" || m.target == root_ + "/dbl/wal") {
          found = umount2(m.target.c_str(), 0) == 0 || found;
        }
      }
      if (!found) {
        // It moved while we looked: detach by whichever name is real now.
        for (const char* n : {"/db/wal", "/dbl/wal"}) umount2((root_ + n).c_str(), MNT_DETACH);
      }
    } else {
      ++refused;
    }
  }
  stop = true;
  flipper.join();
  std::printf("swapped walk: %d mounted beneath the root, %d refused\n", mounted, refused);
  EXPECT_GT(mounted, 0);
  EXPECT_GT(refused, 0) << "the flip never hit the walk: the test proves nothing";
  ExpectOutsideUntouched();
}

TEST_F(MountBeneathTest, ABindMountedRootWorks) {
  // The allowed root is a bind mount of a directory elsewhere.
  ASSERT_EQ(mkdir("/mnt/nw/real", 0755), 0);
  ASSERT_EQ(mount("/mnt/nw/real", root_.c_str(), nullptr, MS_BIND, nullptr), 0);
  LinuxFilesystems fs({root_});
  const std::string target = root_ + "/wal";
  ASSERT_THAT(fs.MakeDirectories(target), IsOk());
  ASSERT_THAT(fs.Mount(disk_->path, target, FsType::kExt4, ""), IsOk());
  auto at = fs.MountedAt(target);
  ASSERT_THAT(at, IsOk());
  EXPECT_TRUE(at->has_value());
  EXPECT_THAT(fs.Unmount(target, /*lazy=*/true), IsOk());
  at = fs.MountedAt(target);
  ASSERT_THAT(at, IsOk());
  EXPECT_FALSE(at->has_value());
  ExpectOutsideUntouched();
}

}  // namespace
}  // namespace nodeward::platform
