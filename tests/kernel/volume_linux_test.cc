// Kernel tier, host side of volumes: real LUKS2 header work, probing and
// device resolution on loop files this test creates and detaches (this
// host has no device-mapper, so activation, mkfs and mount run in the vm
// tier). Needs root: fails, never skips, without it.
#include "platform/linux/volume_linux.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/common/loop_device.h"
#include "tests/common/netns.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::IsOk;
using testing::LoopDevice;
using testing::Sh;
using testing::StatusIs;

class VolumeLinuxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the kernel tier needs root (CI runs as root)";
    char tmpl[] = "/tmp/nw-vol-XXXXXX";
    dir_ = mkdtemp(tmpl);
    by_id_ = dir_ + "/by-id";
    mkdir(by_id_.c_str(), 0755);
  }
  void TearDown() override { Sh("rm -rf " + dir_); }
  // A /dev/disk/by-id style link to the loop device.
  std::string Link(const LoopDevice& d, const std::string& id) {
    EXPECT_EQ(symlink(d.path.c_str(), (by_id_ + "/" + id).c_str()), 0) << id;
    return "/dev/disk/by-id/" + id;
  }
  std::string dir_, by_id_;
};

TEST_F(VolumeLinuxTest, FormatWritesLuks2WithoutAnyKeyslot) {
  LoopDevice d(dir_, "a");
  ASSERT_TRUE(d.ok);
  LinuxBlockDevices devices(by_id_);
  auto dev = devices.Resolve(Link(d, "nw-a"));
  ASSERT_THAT(dev, IsOk());
  EXPECT_EQ(dev->path, d.path);
  EXPECT_EQ(dev->size_bytes, 64u << 20);
  auto content = devices.Probe(*dev);
  ASSERT_THAT(content, IsOk());
  EXPECT_TRUE(content->blank()) << content->description;

  std::vector<uint8_t> key(64);
  LinuxRandom rng;
  ASSERT_THAT(rng.Fill(absl::MakeSpan(key)), IsOk());
  LinuxCrypt crypt;
  std::string uuid;
  ASSERT_THAT(devices.OpenExclusive(*dev), IsOk());  // checked, then released
  auto u = crypt.Format(*dev, key, CryptParams{});
  ASSERT_THAT(u, IsOk());
  uuid = *u;
  auto hdr = crypt.ReadHeader(*dev);
  ASSERT_THAT(hdr, IsOk());
  EXPECT_EQ(hdr->version, "LUKS2");
  EXPECT_EQ(hdr->uuid, uuid);
  EXPECT_EQ(hdr->cipher, "aes-xts-plain64");
  // LUKS2 records the key size in keyslots only; with none, the header
  // does not say (the vm tier reads 512 bits from the active mapping).
  EXPECT_EQ(hdr->key_bits, 0);
  EXPECT_EQ(hdr->keyslots, 0);
  std::string dump;
  ASSERT_EQ(Sh("cryptsetup luksDump " + d.path, &dump), 0) << dump;
  EXPECT_TRUE(absl::StrContains(dump, "Keyslots:\nTokens:")) << dump;  // no keyslot listed
  EXPECT_TRUE(absl::StrContains(dump, "pbkdf2\n\tHash:       sha256")) << dump;
  EXPECT_TRUE(absl::StrContains(dump, "aes-xts-plain64")) << dump;
  // The header now makes the device non-blank: SetupVolume would refuse it
  // without destroy_existing_data.
  content = devices.Probe(*dev);
  ASSERT_THAT(content, IsOk());
  EXPECT_TRUE(content->luks);
  // And the key is nowhere in the image.
  std::ifstream in(d.file, std::ios::binary);
  std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(image.size(), 64u << 20);
  EXPECT_EQ(image.find(std::string(key.begin(), key.begin() + 32)), std::string::npos);
  EXPECT_EQ(image.find(std::string(key.begin() + 32, key.end())), std::string::npos);
}

TEST_F(VolumeLinuxTest, ProbeFindsFilesystemsAndPartitionTables) {
  LoopDevice ext4(dir_, "e"), xfs(dir_, "x", 320), mbr(dir_, "m");
  ASSERT_TRUE(ext4.ok && xfs.ok && mbr.ok);
  std::string out;
  ASSERT_EQ(Sh("mkfs.ext4 -q -F " + ext4.path, &out), 0) << out;
  ASSERT_EQ(Sh("mkfs.xfs -q -f " + xfs.path, &out), 0) << out;
  // One MBR partition entry (type 0x83) and the boot signature.
  ASSERT_EQ(Sh("printf '\\203' | dd of=" + mbr.path + " bs=1 seek=450 conv=notrunc status=none && "
               "printf '\\125\\252' | dd of=" + mbr.path + " bs=1 seek=510 conv=notrunc status=none",
               &out),
            0)
      << out;
  LinuxBlockDevices devices(by_id_);
  for (auto [d, id, what] : {std::make_tuple(&ext4, "e", "ext4 file system"),
                             std::make_tuple(&xfs, "x", "xfs file system"),
                             std::make_tuple(&mbr, "m", "dos partition table")}) {
    auto dev = devices.Resolve(Link(*d, id));
    ASSERT_THAT(dev, IsOk());
    auto c = devices.Probe(*dev);
    ASSERT_THAT(c, IsOk());
    EXPECT_FALSE(c->blank());
    EXPECT_TRUE(absl::StartsWith(c->description, what)) << c->description;
  }
}

TEST_F(VolumeLinuxTest, OnlyStableIdentifiersResolve) {
  LinuxBlockDevices devices(by_id_);
  EXPECT_THAT(devices.Resolve("/dev/loop0"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(devices.Resolve("/dev/disk/by-id/../../loop0"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(devices.Resolve("/dev/disk/by-id/nothing-here"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(devices.Resolve("serial:no-such-serial"), StatusIs(absl::StatusCode::kNotFound));
  Sh("touch " + dir_ + "/plain && ln -s " + dir_ + "/plain " + by_id_ + "/file");
  EXPECT_THAT(devices.Resolve("/dev/disk/by-id/file"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(VolumeLinuxTest, ExclusiveOpenRefusesABusyOrSwappedDevice) {
  LoopDevice a(dir_, "a"), b(dir_, "b");
  ASSERT_TRUE(a.ok && b.ok);
  LinuxBlockDevices devices(by_id_);
  auto dev = devices.Resolve(Link(a, "nw-a"));
  ASSERT_THAT(dev, IsOk());
  {
    int fd = open(a.path.c_str(), O_RDONLY | O_EXCL);
    ASSERT_GE(fd, 0);
    auto use = devices.Use(*dev);
    ASSERT_THAT(use, IsOk());
    EXPECT_TRUE(use->busy);
    EXPECT_THAT(devices.OpenExclusive(*dev), StatusIs(absl::StatusCode::kFailedPrecondition));
    close(fd);
  }
  auto use = devices.Use(*dev);
  ASSERT_THAT(use, IsOk());
  EXPECT_FALSE(use->in_use()) << use->description;
  // The link now points at another disk: the checked identity no longer
  // matches what opens.
  BlockDevice stale = *dev;
  stale.path = b.path;
  EXPECT_THAT(devices.OpenExclusive(stale), StatusIs(absl::StatusCode::kAborted));
}

TEST_F(VolumeLinuxTest, NoMappingExistsWithoutDeviceMapper) {
  LinuxCrypt crypt;
  auto s = crypt.Status("nodeward-test-none");
  ASSERT_THAT(s, IsOk());
  EXPECT_FALSE(s->active);
}

// Issue "Hardening II" point 11 on the real kernel: what SetupVolume checks
// before it writes. This host kernel has no device-mapper (the vm tier's
// has): the check names it; both mkfs programs are installed here.
TEST_F(VolumeLinuxTest, DmCryptAndMkfsAreCheckedBeforeWriting) {
  LinuxCrypt crypt;
  absl::Status dm = crypt.CheckAvailable();
  std::ifstream misc("/proc/misc");
  const std::string devices_now((std::istreambuf_iterator<char>(misc)),
                                std::istreambuf_iterator<char>());
  if (absl::StrContains(devices_now, "device-mapper")) {
    EXPECT_THAT(dm, IsOk());
  } else {
    EXPECT_THAT(dm, StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_TRUE(absl::StrContains(dm.message(), "/dev/mapper/control")) << dm;
  }
  LinuxFilesystems fs;
  EXPECT_THAT(fs.CheckMkfs(FsType::kExt4), IsOk());
  EXPECT_THAT(fs.CheckMkfs(FsType::kXfs), IsOk());
}

}  // namespace
}  // namespace nodeward::platform
