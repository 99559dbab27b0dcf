// Wipe on fakes: every volume crypto-erased (mapping gone, header gone,
// verified), backup key files overwritten and removed, a receipt signed with
// the agent's TLS key that verifies against its certificate; resend returns
// the same receipt; a wipe cut short is finished at the next start; a wiped
// node takes no new volumes or keys.
#include "agent/wipe/wipe.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "agent/backup/backup_keys.h"
#include "gtest/gtest.h"
#include "tests/common/backup_test_util.h"
#include "tests/common/status_matchers.h"
#include "tests/common/volume_commands.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_file_system.h"
#include "tests/fakes/fake_volume.h"
#include "tools/nodewardctl/dev_pki.h"

namespace nodeward::wipe {
namespace {

using absl::StatusCode;
using nodeward::v1::VolumeStatus;
using nodeward::v1::WipeItem;
using testing::IsOk;
using testing::StatusIs;

constexpr char kDisk1[] = "serial:nw-data-1";
constexpr char kDisk2[] = "serial:nw-data-2";

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One dev PKI per test binary: the agent's TLS key and certificate, and a
// second certificate that must not verify the receipt.
struct Pki {
  std::string key, cert, other_cert;
  Pki() {
    char tmpl[] = "/tmp/nw-wipe-pki.XXXXXX";
    std::string dir = mkdtemp(tmpl);
    DevPkiOptions o;
    o.out_dir = dir + "/a";
    EXPECT_THAT(GenerateDevPki(o), IsOk());
    o.out_dir = dir + "/b";
    EXPECT_THAT(GenerateDevPki(o), IsOk());
    key = Slurp(dir + "/a/server.key");
    cert = Slurp(dir + "/a/server.pem");
    other_cert = Slurp(dir + "/b/server.pem");
    std::system(("rm -rf " + dir).c_str());
  }
};
const Pki& P() {
  static const Pki* p = new Pki();
  return *p;
}

using testing::SetupCmd;

VerifiedCommand WipeCmd(uint64_t seq) {
  VerifiedCommand v;
  v.command_type = "wipe";
  v.command.set_command_id("0f4b3a52-6a1c-4d58-9a3e-7a1b2c3d4e5" + std::to_string(seq % 10));
  v.command.set_sequence(seq);
  v.command.mutable_wipe()->set_reason("termination ticket T-1");
  return v;
}

class WipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v_.AddDisk(kDisk1, "/dev/vdb", 0xfe10);
    v_.AddDisk(kDisk2, "/dev/vdc", 0xfe20);
    fs_.SetContent("/etc/nodeward/server.key", P().key);
    fs_.SetContent("/etc/nodeward/server.pem", P().cert);
    volumes_ = std::make_unique<volume::VolumeManager>(
        volume::VolumeDeps{&v_.devices, &v_.crypt, &v_.filesystems, &v_.random, &fs_, &clock_},
        volume::VolumeOptions{{"/var/lib/data"}, "/state/volumes.pb", "boot-1"});
    ASSERT_THAT(volumes_->Restore(), IsOk());
    ASSERT_THAT(volumes_->Apply(SetupCmd("pg-data", kDisk1, "pgdata", "/var/lib/data/pg")), IsOk());
    ASSERT_THAT(volumes_->Apply(SetupCmd("pg-wal", kDisk2, "pgwal", "/var/lib/data/wal")), IsOk());
    ASSERT_THAT(keys_.Install("svc-1", testing::K().a.public_key().ToPem(),
                              testing::K().a.ToPkcs8Pem().value()),
                IsOk());
    handler_ = Handler();
    ASSERT_THAT(handler_->Restore(), IsOk());
  }
  std::unique_ptr<WipeHandler> Handler() {
    return std::make_unique<WipeHandler>(
        WipeDeps{volumes_.get(), &keys_, &fs_, &clock_},
        WipeOptions{"/state/wipe.pb", "node-1", "boot-1", "/etc/nodeward/server.key",
                    "/etc/nodeward/server.pem"});
  }
  std::vector<std::string> KeyFiles() {
    std::vector<std::string> out;
    const std::vector<platform::FileSystem::Entry> tree = fs_.ListTree("/keys").value();
    for (const auto& e : tree) out.push_back(e.path);
    return out;
  }

  platform::FakeVolumes v_;
  platform::FakeFileSystem fs_;
  platform::FakeClock clock_;
  std::unique_ptr<volume::VolumeManager> volumes_;
  backup::BackupKeyStore keys_{&fs_, "/keys"};
  std::unique_ptr<WipeHandler> handler_;
};

TEST_F(WipeTest, ErasesEveryVolumeAndKeyFileAndSignsAReceipt) {
  v_.busy_mounts.insert("/var/lib/data/wal");  // the database still has files open there
  const std::vector<std::string> files = KeyFiles();
  ASSERT_EQ(files.size(), 3u);  // <id>.pub, <id>.key, current
  const std::string private_key = fs_.Content(files[0].find(".key") != std::string::npos
                                                  ? files[0]
                                                  : files[1].find(".key") != std::string::npos
                                                        ? files[1]
                                                        : files[2]);
  auto r = handler_->Apply(WipeCmd(7));
  ASSERT_THAT(r, IsOk());
  ASSERT_TRUE(r->has_wipe());
  EXPECT_FALSE(r->wipe().already_wiped());
  EXPECT_EQ(r->wipe().signature_algorithm(), "ecdsa-sha256");

  auto receipt = VerifyReceipt(r->wipe(), P().cert);
  ASSERT_THAT(receipt, IsOk());
  EXPECT_TRUE(receipt->complete());
  EXPECT_FALSE(receipt->resumed());
  EXPECT_EQ(receipt->node_id(), "node-1");
  EXPECT_EQ(receipt->sequence(), 7u);
  EXPECT_EQ(receipt->reason(), "termination ticket T-1");
  ASSERT_EQ(receipt->items_size(), 5);
  for (const WipeItem& i : receipt->items()) EXPECT_TRUE(i.verified()) << i.id() << ": " << i.detail();
  EXPECT_EQ(receipt->items(0).kind(), WipeItem::VOLUME);
  EXPECT_EQ(receipt->items(0).device_path(), "/dev/vdb");
  EXPECT_FALSE(receipt->items(0).luks_uuid().empty());
  EXPECT_NE(receipt->items(1).detail().find("detached"), std::string::npos)
      << receipt->items(1).detail();

  // The kernel side: no mapping, no mount, no header.
  EXPECT_TRUE(v_.mappings().empty());
  EXPECT_TRUE(v_.mounts().empty());
  EXPECT_FALSE(v_.disk(kDisk1).header.has_value());
  EXPECT_FALSE(v_.disk(kDisk2).header.has_value());
  for (const auto& s : volumes_->Statuses()) EXPECT_EQ(s.state(), VolumeStatus::WIPED);
  // Key files: overwritten in place with other bytes of the same size, then gone.
  EXPECT_TRUE(KeyFiles().empty());
  ASSERT_EQ(fs_.overwrites().size(), 3u);
  for (const auto& [path, data] : fs_.overwrites()) {
    if (path.find(".key") == std::string::npos) continue;
    EXPECT_EQ(data.size(), private_key.size());
    EXPECT_EQ(data.find("PRIVATE KEY"), std::string::npos);
  }
  EXPECT_EQ(handler_->Describe().text.rfind("complete at ", 0), 0u);
  EXPECT_FALSE(handler_->Describe().incomplete);
}

TEST_F(WipeTest, ResendReturnsTheSameReceiptAndNothingNewIsSetUp) {
  auto first = handler_->Apply(WipeCmd(7));
  ASSERT_THAT(first, IsOk());
  const size_t steps = v_.log().size();
  auto again = handler_->Apply(WipeCmd(8));
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->wipe().already_wiped());
  EXPECT_EQ(again->wipe().receipt(), first->wipe().receipt());
  EXPECT_EQ(again->wipe().signature(), first->wipe().signature());
  EXPECT_EQ(v_.log().size(), steps);  // no step ran again
  // A restart keeps it wiped.
  auto restarted = Handler();
  ASSERT_THAT(restarted->Restore(), IsOk());
  EXPECT_TRUE(restarted->wiped());
  // New volumes and keys are refused.
  RefuseAfterWipe setup(restarted.get(), std::make_unique<volume::VolumeManager>(
      volume::VolumeDeps{&v_.devices, &v_.crypt, &v_.filesystems, &v_.random, &fs_, &clock_},
      volume::VolumeOptions{{"/var/lib/data"}, "/state/volumes.pb", "boot-1"}));
  EXPECT_THAT(setup.Apply(SetupCmd("pg-new", kDisk1, "pgnew", "/var/lib/data/new")),
              StatusIs(StatusCode::kFailedPrecondition));
  // And the volume manager itself will not bring a wiped volume back.
  EXPECT_THAT(volumes_->Apply(SetupCmd("pg-data", kDisk1, "pgdata", "/var/lib/data/pg")),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_FALSE(v_.disk(kDisk1).header.has_value());
}

// SIGKILL or a failing step part-way: the record says "started", health says
// so, and the next start finishes the job (threats.md case 28).
TEST_F(WipeTest, InterruptedWipeIsFinishedAtTheNextStart) {
  v_.fail_erase = 1;  // the first header overwrite fails (EIO)
  auto r = handler_->Apply(WipeCmd(7));
  EXPECT_THAT(r, StatusIs(StatusCode::kInternal));
  EXPECT_TRUE(v_.mappings().empty());  // the keys are gone already
  EXPECT_TRUE(v_.disk(kDisk1).header.has_value());
  EXPECT_TRUE(handler_->Describe().incomplete);
  EXPECT_NE(handler_->Describe().text.find("pg-data"), std::string::npos);
  EXPECT_FALSE(handler_->wiped());

  auto restarted = Handler();
  ASSERT_THAT(restarted->Restore(), IsOk());  // finishes the wipe
  EXPECT_TRUE(restarted->wiped());
  EXPECT_FALSE(v_.disk(kDisk1).header.has_value());
  auto again = restarted->Apply(WipeCmd(8));
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->wipe().already_wiped());
  auto receipt = VerifyReceipt(again->wipe(), P().cert);
  ASSERT_THAT(receipt, IsOk());
  EXPECT_TRUE(receipt->resumed());
  EXPECT_EQ(receipt->sequence(), 7u);  // the command that ordered it
}

// A disk detached since setup: no mapping can exist, the key is gone; the
// item says its header was out of reach instead of failing the wipe forever.
TEST_F(WipeTest, DetachedDiskIsErasedByItsLostKeyAndSaysSo) {
  v_.Reboot();
  v_.RemoveDisk(kDisk2);
  auto r = handler_->Apply(WipeCmd(7));
  ASSERT_THAT(r, IsOk());
  auto receipt = VerifyReceipt(r->wipe(), P().cert);
  ASSERT_THAT(receipt, IsOk());
  ASSERT_GE(receipt->items_size(), 2);
  EXPECT_TRUE(receipt->items(1).verified());
  EXPECT_NE(receipt->items(1).detail().find("not attached"), std::string::npos)
      << receipt->items(1).detail();
  EXPECT_FALSE(v_.disk(kDisk1).header.has_value());
}

// A device that refuses the overwrite: reported, never claimed done.
TEST_F(WipeTest, HeaderThatCannotBeOverwrittenLeavesTheWipeIncomplete) {
  v_.fail_erase = 100;
  auto r = handler_->Apply(WipeCmd(7));
  EXPECT_THAT(r, StatusIs(StatusCode::kInternal));
  EXPECT_NE(std::string(r.status().message()).find("erase header"), std::string::npos)
      << r.status().message();
  EXPECT_TRUE(handler_->Describe().incomplete);
  EXPECT_FALSE(handler_->wiped());
}

// Volume records lost (corrupt file) at startup: the wipe cannot know which
// volumes there were, so it never claims to be complete.
TEST_F(WipeTest, LostVolumeRecordsKeepTheWipeIncomplete) {
  fs_.SetContent("/state/volumes.pb", "not a protobuf \xff\xff\xff");
  volumes_ = std::make_unique<volume::VolumeManager>(
      volume::VolumeDeps{&v_.devices, &v_.crypt, &v_.filesystems, &v_.random, &fs_, &clock_},
      volume::VolumeOptions{{"/var/lib/data"}, "/state/volumes.pb", "boot-1"});
  EXPECT_THAT(volumes_->Restore(), StatusIs(StatusCode::kDataLoss));
  handler_ = Handler();
  ASSERT_THAT(handler_->Restore(), IsOk());
  auto r = handler_->Apply(WipeCmd(7));
  EXPECT_THAT(r, StatusIs(StatusCode::kInternal));
  EXPECT_NE(std::string(r.status().message()).find("volume records were lost"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(handler_->wiped());
}

TEST_F(WipeTest, UnrecordedIntentDoesNothing) {
  fs_.FailNext(StatusCode::kResourceExhausted);
  EXPECT_THAT(handler_->Apply(WipeCmd(7)), StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(v_.mappings().size(), 2u);
  EXPECT_EQ(KeyFiles().size(), 3u);
  EXPECT_EQ(handler_->Describe().text, "");
}

TEST_F(WipeTest, ReceiptIsBoundToTheKeyAndTheBytes) {
  auto r = handler_->Apply(WipeCmd(7));
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(VerifyReceipt(r->wipe(), P().other_cert), StatusIs(StatusCode::kInvalidArgument));
  nodeward::v1::WipeResult bad = r->wipe();
  std::string bytes = bad.receipt();
  bytes[bytes.size() / 2] ^= 1;
  bad.set_receipt(bytes);
  EXPECT_THAT(VerifyReceipt(bad, P().cert), StatusIs(StatusCode::kDataLoss));
  bad = r->wipe();
  bad.set_signer_certificate_sha256(std::string(64, '0'));
  EXPECT_FALSE(VerifyReceipt(bad, P().cert).ok());
}

TEST_F(WipeTest, LongReasonIsRefusedBeforeAnything) {
  VerifiedCommand c = WipeCmd(7);
  c.command.mutable_wipe()->set_reason(std::string(257, 'x'));
  EXPECT_THAT(handler_->Apply(c), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(v_.mappings().size(), 2u);
}

}  // namespace
}  // namespace nodeward::wipe
