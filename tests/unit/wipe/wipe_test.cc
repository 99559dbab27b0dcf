// Wipe on fakes: every volume crypto-erased (mapping gone, header gone,
// verified), backup key files overwritten and removed, a receipt signed with
// the agent's own Ed25519 signing key (never its TLS key); resend returns
// the same receipt; a wipe cut short is finished at the next start; a wiped
// node takes no new volumes or keys.
#include "agent/wipe/wipe.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/common/reason.h"
#include "agent/backup/backup_keys.h"
#include "agent/wipe/receipt.h"
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

// One dev PKI per test binary: the agent's TLS key and certificate (which
// must never make or verify a receipt), and the agent's signing key beside
// another Ed25519 key that must not verify it.
struct Pki {
  std::string key, cert, other_cert;
  Ed25519PrivateKey signer = Ed25519PrivateKey::Generate().value();
  Ed25519PrivateKey other = Ed25519PrivateKey::Generate().value();
  Ed25519PublicKey signer_pub = Ed25519PublicKey::FromRaw(signer.PublicRaw()).value();
  Ed25519PublicKey other_pub = Ed25519PublicKey::FromRaw(other.PublicRaw()).value();
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
    EXPECT_EQ(std::system(("rm -rf " + dir).c_str()), 0);
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
        WipeOptions{"/state/wipe.pb", "node-1", "boot-1", &P().signer, orphan_records_});
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
  std::string orphan_records_;
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
  EXPECT_EQ(r->wipe().signature_algorithm(), "ed25519");
  EXPECT_EQ(r->wipe().payload_type(), kReceiptPayloadType);
  EXPECT_EQ(r->wipe().signing_key_id(), P().signer.KeyId());

  auto receipt = VerifyReceipt(r->wipe(), P().signer_pub);
  ASSERT_THAT(receipt, IsOk());
  EXPECT_TRUE(receipt->complete());
  EXPECT_FALSE(receipt->resumed());
  EXPECT_EQ(receipt->node_id(), "node-1");
  EXPECT_EQ(receipt->sequence(), 7u);
  EXPECT_EQ(receipt->reason(), "termination ticket T-1");
  ASSERT_EQ(receipt->items_size(), 6);  // 2 volumes, 3 key files, the key directory
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
  auto receipt = VerifyReceipt(again->wipe(), P().signer_pub);
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
  auto receipt = VerifyReceipt(r->wipe(), P().signer_pub);
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
  EXPECT_THAT(VerifyReceipt(r->wipe(), P().other_pub), StatusIs(StatusCode::kInvalidArgument));
  nodeward::v1::WipeResult bad = r->wipe();
  std::string bytes = bad.receipt();
  bytes[bytes.size() / 2] ^= 1;
  bad.set_receipt(bytes);
  EXPECT_THAT(VerifyReceipt(bad, P().signer_pub), StatusIs(StatusCode::kDataLoss));
  bad = r->wipe();
  bad.set_signing_key_id(P().other.KeyId());
  EXPECT_FALSE(VerifyReceipt(bad, P().signer_pub).ok());
  bad = r->wipe();
  bad.set_payload_type("application/vnd.nodeward.something-else");
  EXPECT_THAT(VerifyReceipt(bad, P().signer_pub), StatusIs(StatusCode::kInvalidArgument));
}

// The signature scheme of fcf3c42 (the TLS key over "nodeward.v1.WipeReceipt\0"
// + bytes) is what a TLS 1.2 handshake hands any peer: such a result is
// refused, and the TLS certificate or key is not accepted as a receipt key.
TEST_F(WipeTest, ReceiptSignedWithTheTlsKeyIsRefused) {
  auto r = handler_->Apply(WipeCmd(7));
  ASSERT_THAT(r, IsOk());
  nodeward::v1::WipeResult forged = r->wipe();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(P().key.data(), static_cast<int>(P().key.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> tls_key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  ASSERT_TRUE(tls_key);
  const std::string msg = std::string("nodeward.v1.WipeReceipt") + '\0' + forged.receipt();
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  ASSERT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, tls_key.get()), 1);
  ASSERT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len,
                           reinterpret_cast<const unsigned char*>(msg.data()), msg.size()), 1);
  std::string sig(len, '\0');
  ASSERT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(msg.data()), msg.size()), 1);
  sig.resize(len);
  forged.set_signature(sig);
  forged.set_signature_algorithm("ecdsa-sha256");
  EXPECT_FALSE(VerifyReceipt(forged, P().signer_pub).ok());
  forged.set_signature_algorithm("ed25519");
  EXPECT_FALSE(VerifyReceipt(forged, P().signer_pub).ok());
  // Neither the certificate nor its public key is a receipt key.
  EXPECT_THAT(ParseSigningPublicKey(P().cert), StatusIs(StatusCode::kInvalidArgument));
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  ASSERT_EQ(PEM_write_bio_PUBKEY(out.get(), tls_key.get()), 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(out.get(), &data);
  EXPECT_THAT(ParseSigningPublicKey(std::string(data, n)), StatusIs(StatusCode::kInvalidArgument));
  // The agent's own key in both accepted forms.
  std::string b64;
  absl::Base64Escape(P().signer.PublicRaw(), &b64);
  ASSERT_THAT(ParseSigningPublicKey(b64 + "\n"), IsOk());
  EXPECT_EQ(ParseSigningPublicKey(b64)->key_id(), P().signer.KeyId());
}

// Even under the right key, a receipt must be exactly a receipt: unknown
// fields (what the TLS 1.2 forgery needs to swallow the handshake bytes) and
// missing node, boot, command id, sequence or items are refused.
TEST_F(WipeTest, VerifierRejectsUnknownFieldsAndMissingFacts) {
  auto r = handler_->Apply(WipeCmd(7));
  ASSERT_THAT(r, IsOk());
  auto sign = [](const std::string& bytes) {
    nodeward::v1::WipeResult w;
    w.set_receipt(bytes);
    w.set_signature(P().signer.Sign(Pae(kReceiptPayloadType, bytes)).value());
    w.set_signature_algorithm("ed25519");
    w.set_payload_type(std::string(kReceiptPayloadType));
    w.set_signing_key_id(P().signer.KeyId());
    return w;
  };
  ASSERT_THAT(VerifyReceipt(sign(r->wipe().receipt()), P().signer_pub), IsOk());
  // complete=true, then field 15 (length-delimited) swallowing the rest.
  std::string swallow = r->wipe().receipt() + std::string("\x48\x01\x7a\x03xyz", 7);
  EXPECT_THAT(VerifyReceipt(sign(swallow), P().signer_pub), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(VerifyReceipt(sign(std::string("\x48\x01\x7a\x03xyz", 7)), P().signer_pub),
              StatusIs(StatusCode::kDataLoss));
  nodeward::v1::WipeReceipt full;
  ASSERT_TRUE(full.ParseFromString(r->wipe().receipt()));
  for (int drop = 0; drop < 5; ++drop) {
    nodeward::v1::WipeReceipt c = full;
    if (drop == 0) c.clear_node_id();
    if (drop == 1) c.clear_boot_id();
    if (drop == 2) c.clear_command_id();
    if (drop == 3) c.clear_sequence();
    if (drop == 4) c.clear_items();
    EXPECT_THAT(VerifyReceipt(sign(c.SerializeAsString()), P().signer_pub),
                StatusIs(StatusCode::kDataLoss))
        << "dropped fact " << drop;
  }
}

// Issue "Hardening II" point 6, the race forced: a SetupVolume and a
// ProvisionBackupKey that arrive while the wipe is erasing (waiting for the
// lock WipeAll holds) run right after it on fcf3c42, so the receipt said
// complete while a volume was ACTIVE. Now the fence set with the intent
// refuses both under the same locks.
TEST_F(WipeTest, SetupAndKeysArrivingDuringTheWipeAreRefused) {
  absl::Notification erasing, release;
  v_.AddDisk("serial:nw-data-3", "/dev/vdd", 0xfe30);
  v_.during_erase = [&] {
    if (!erasing.HasBeenNotified()) erasing.Notify();
    release.WaitForNotification();
  };
  absl::StatusOr<nodeward::v1::CommandResult> wiped;
  std::thread wipe([&] { wiped = handler_->Apply(WipeCmd(7)); });
  erasing.WaitForNotification();
  absl::StatusOr<nodeward::v1::CommandResult> setup;
  absl::Status key;
  std::thread late_setup([&] {
    setup = volumes_->Apply(SetupCmd("pg-late", "serial:nw-data-3", "pglate", "/var/lib/data/late"));
  });
  std::thread late_key([&] {
    key = keys_.Install("svc-2", testing::K().b.public_key().ToPem(), std::nullopt).status();
  });
  absl::SleepFor(absl::Milliseconds(50));  // both are waiting on the locks
  release.Notify();
  wipe.join();
  late_setup.join();
  late_key.join();
  ASSERT_THAT(wiped, IsOk());
  auto receipt = VerifyReceipt(wiped->wipe(), P().signer_pub);
  ASSERT_THAT(receipt, IsOk());
  EXPECT_TRUE(receipt->complete());
  EXPECT_THAT(setup, testing::Rejected(StatusCode::kFailedPrecondition, reason::kWipeStarted));
  EXPECT_THAT(key, testing::Rejected(StatusCode::kFailedPrecondition, reason::kWipeStarted));
  EXPECT_TRUE(v_.mappings().empty());
  for (const auto& s : volumes_->Statuses()) EXPECT_NE(s.state(), VolumeStatus::ACTIVE);
  EXPECT_TRUE(KeyFiles().empty());
}

// A node with volume records but volumes disabled never reports a wipe
// complete (on fcf3c42 it ignored volumes.pb).
TEST_F(WipeTest, VolumeRecordsWithVolumesDisabledKeepTheWipeIncomplete) {
  orphan_records_ = "/state/volumes.pb";
  auto h = std::make_unique<WipeHandler>(
      WipeDeps{nullptr, &keys_, &fs_, &clock_},
      WipeOptions{"/state/wipe.pb", "node-1", "boot-1", &P().signer, orphan_records_});
  ASSERT_THAT(h->Restore(), IsOk());
  auto r = h->Apply(WipeCmd(7));
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("volume management is disabled"), std::string::npos)
      << r.status();
  EXPECT_TRUE(h->Describe().incomplete);
}

TEST_F(WipeTest, LongReasonIsRefusedBeforeAnything) {
  VerifiedCommand c = WipeCmd(7);
  c.command.mutable_wipe()->set_reason(std::string(257, 'x'));
  EXPECT_THAT(handler_->Apply(c), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(v_.mappings().size(), 2u);
}

}  // namespace
}  // namespace nodeward::wipe
