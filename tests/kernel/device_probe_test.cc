// Kernel tier: the device probe sees every existing data signature (Hardening
// II point 4, threat 18), on loop devices over image files this test makes.
// Images come from the real tools where they run here (mkfs.ext4, mkswap,
// mkfs.btrfs, make-bcache, cryptsetup luksFormat on a file, sfdisk); LVM2
// and md need block-device daemons or the md driver this host lacks, so
// their on-disk labels are written from the formats' specifications (LVM2
// label header with its CRC; md 0.90 at the end and 1.2 at 4 KiB with its
// checksum), and blkid(8) confirms each image says what it should.
// Needs root: fails, never skips, without it.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "platform/linux/volume_linux.h"
#include "absl/strings/strip.h"
#include "tests/common/shell.h"
#include "tests/common/status_matchers.h"

namespace nodeward::platform {
namespace {

using testing::IsOk;
using testing::Sh;

constexpr uint64_t kSize = 128u << 20;  // btrfs wants 109 MiB at least

void Put32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(std::vector<uint8_t>& b, size_t off, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

bool WriteAt(const std::string& file, uint64_t off, const std::vector<uint8_t>& b) {
  const int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = pwrite(fd, b.data(), b.size(), static_cast<off_t>(off)) ==
                  static_cast<ssize_t>(b.size());
  close(fd);
  return ok;
}

// LVM2's label CRC (lib/misc/crc.c): 0xf597a6cf seed, nibble table.
uint32_t LvmCrc(const uint8_t* p, size_t n) {
  static const uint32_t t[16] = {0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac,
                                 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
                                 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
                                 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c};
  uint32_t crc = 0xf597a6cf;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    crc = (crc >> 4) ^ t[crc & 0xf];
    crc = (crc >> 4) ^ t[crc & 0xf];
  }
  return crc;
}

// A physical volume label as pvcreate writes it: sector 1, "LABELONE",
// sector number, CRC of the rest of the sector, "LVM2 001", the PV UUID.
bool MakeLvm2(const std::string& file) {
  std::vector<uint8_t> s(512, 0);
  std::memcpy(s.data(), "LABELONE", 8);
  Put64(s, 8, 1);
  Put32(s, 20, 32);
  std::memcpy(s.data() + 24, "LVM2 001", 8);
  std::memcpy(s.data() + 32, "nodewardtestpv0123456789abcdefgh", 32);
  Put64(s, 64, kSize);  // device size
  Put32(s, 16, LvmCrc(s.data() + 20, 512 - 20));
  return WriteAt(file, 512, s);
}

// md 0.90: the superblock in the last 64 KiB-aligned 64 KiB of the device.
bool MakeMd090(const std::string& file) {
  std::vector<uint8_t> s(4096, 0);
  Put32(s, 0, 0xa92b4efc);
  Put32(s, 4, 0);   // major
  Put32(s, 8, 90);  // minor
  Put32(s, 20, 0x12345678);
  Put32(s, 28, 1);  // level raid1
  Put32(s, 36, 2);  // nr_disks
  Put32(s, 40, 2);  // raid_disks
  return WriteAt(file, (kSize & ~uint64_t{0xffff}) - 0x10000, s);
}

// md 1.2: at 4 KiB, super_offset 8 (sectors), checksum over 256 bytes plus
// max_dev roles.
bool MakeMd12(const std::string& file) {
  std::vector<uint8_t> s(256 + 2 * 2, 0);
  Put32(s, 0, 0xa92b4efc);
  Put32(s, 4, 1);  // major_version
  for (int i = 0; i < 16; ++i) s[16 + i] = static_cast<uint8_t>(0xa0 + i);  // set_uuid
  std::memcpy(s.data() + 32, "nodeward:0", 10);
  Put32(s, 72, 1);                      // level
  Put64(s, 128, 2048);                  // data_offset
  Put64(s, 136, kSize / 512 - 2048);    // data_size
  Put64(s, 144, 8);                     // super_offset
  Put32(s, 220, 2);                     // max_dev
  s[256] = 0; s[257] = 0; s[258] = 1; s[259] = 0;  // dev_roles
  uint64_t sum = 0;
  for (size_t i = 0; i + 4 <= s.size(); i += 4) {
    if (i == 216) continue;  // sb_csum itself counts as 0
    sum += static_cast<uint32_t>(s[i] | s[i + 1] << 8 | s[i + 2] << 16 |
                                 static_cast<uint32_t>(s[i + 3]) << 24);
  }
  Put32(s, 216, static_cast<uint32_t>((sum & 0xffffffff) + (sum >> 32)));
  return WriteAt(file, 4096, s);
}

class DeviceProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the kernel tier needs root (CI runs as root)";
    char tmpl[] = "/tmp/nw-probe-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { Sh("rm -rf " + dir_); }
  std::string dir_;
};

struct Image {
  const char* name;
  const char* blkid;  // what blkid -p says (TYPE or PTTYPE)
  const char* ours;   // what the description must name
  std::function<bool(const std::string& file)> make;
};

bool RunOk(const std::string& cmd) {
  std::string out;
  const int rc = Sh(cmd, &out);
  if (rc != 0) ADD_FAILURE() << cmd << ": " << out;
  return rc == 0;
}

TEST_F(DeviceProbeTest, EverySignatureIsSeenAndABlankDiskIsBlank) {
  const std::string luks = "cryptsetup luksFormat -q --batch-mode --key-file=- "
                           "--pbkdf-force-iterations 1000 ";
  const std::vector<Image> images = {
      {"lvm2", "LVM2_member", "LVM2_member", MakeLvm2},
      {"md090", "linux_raid_member", "linux_raid_member", MakeMd090},
      {"md12", "linux_raid_member", "linux_raid_member", MakeMd12},
      {"bcache", "bcache", "bcache", [](const std::string& f) { return RunOk("make-bcache -B " + f); }},
      {"swap", "swap", "swap", [](const std::string& f) { return RunOk("mkswap -q " + f); }},
      {"btrfs", "btrfs", "btrfs", [](const std::string& f) { return RunOk("mkfs.btrfs -q -f " + f); }},
      {"luks1", "crypto_LUKS", "LUKS1 header",
       [&](const std::string& f) {
         return RunOk("printf k | " + luks + "--type luks1 --pbkdf pbkdf2 " + f);
       }},
      {"luks2", "crypto_LUKS", "LUKS2 header",
       [&](const std::string& f) {
         return RunOk("printf k | " + luks + "--type luks2 --pbkdf pbkdf2 " + f);
       }},
      // A GPT whose start (protective MBR, primary header and entries) was
      // overwritten: only the backup header at the end is left.
      {"gpt-backup", nullptr, "gpt partition table",
       [](const std::string& f) {
         return RunOk("printf 'label: gpt\\n,16M\\n' | sfdisk -q " + f) &&
                RunOk("dd if=/dev/zero of=" + f + " bs=512 count=34 conv=notrunc status=none");
       }},
      {"ext4", "ext4", "ext4 file system",
       [](const std::string& f) { return RunOk("mkfs.ext4 -q -F " + f); }},
  };
  LinuxBlockDevices devices("/nonexistent");
  for (const Image& im : images) {
    SCOPED_TRACE(im.name);
    const std::string file = absl::StrCat(dir_, "/", im.name, ".img");
    ASSERT_TRUE(RunOk(absl::StrCat("truncate -s ", kSize, " ", file)));
    ASSERT_TRUE(im.make(file));
    // The image is what it claims to be, by util-linux's own reading.
    std::string said;
    if (im.blkid != nullptr) {
      Sh("blkid -p -o export " + file, &said);
      ASSERT_TRUE(absl::StrContains(said, absl::StrCat("=", im.blkid, "\n"))) << said;
    } else {
      // blkid(8) without --force-gpt skips a GPT with no protective MBR;
      // the backup header is there all the same.
      Sh(absl::StrCat("tail -c 512 ", file, " | head -c 8"), &said);
      ASSERT_EQ(said, "EFI PART");
    }
    std::string out;
    ASSERT_EQ(Sh("losetup -f --show " + file, &out), 0) << out;
    const std::string dev_path(absl::StripAsciiWhitespace(out));
    BlockDevice dev;
    dev.path = dev_path;
    auto c = devices.Probe(dev);
    Sh("losetup -d " + dev_path);
    ASSERT_THAT(c, IsOk());
    std::printf("%-10s -> %s\n", im.name, c->description.c_str());
    EXPECT_FALSE(c->blank()) << c->description;
    EXPECT_TRUE(absl::StrContains(c->description, im.ours)) << c->description;
  }
  // The control: all zeros is blank.
  const std::string zero = dir_ + "/zero.img";
  ASSERT_TRUE(RunOk(absl::StrCat("truncate -s ", kSize, " ", zero)));
  std::string out;
  ASSERT_EQ(Sh("losetup -f --show " + zero, &out), 0) << out;
  BlockDevice dev;
  dev.path = std::string(absl::StripAsciiWhitespace(out));
  auto c = devices.Probe(dev);
  Sh("losetup -d " + dev.path);
  ASSERT_THAT(c, IsOk());
  EXPECT_TRUE(c->blank()) << c->description;
  EXPECT_EQ(c->description, "blank");
}

}  // namespace
}  // namespace nodeward::platform
