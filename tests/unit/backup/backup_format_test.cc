// Backup encryption: round trips, test vectors checked against an
// independent transcription of the spec, and every refusal.
#include "agent/backup/backup_format.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "agent/common/crypto.h"
#include "gtest/gtest.h"
#include "tests/common/backup_test_util.h"
#include "tests/common/status_matchers.h"

namespace nodeward::backup {
namespace {

using testing::IsOk;
using testing::StatusIs;

using testing::K;
using testing::StringSink;
using testing::StringSource;
using testing::SwappingSink;
using testing::ViewSource;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string Enc(Format f, const std::string& plain, size_t chunk = kDefaultChunkSize,
                size_t step = 1 << 30) {
  StringSource in(plain, step);
  StringSink out;
  EXPECT_THAT(Encrypt(f, K().a.public_key(), &in, &out, chunk), IsOk());
  return out.data;
}

absl::Status Dec(const std::string& cipher, std::string* plain,
                 std::vector<const RsaPrivateKey*> keys = {&K().a}, size_t step = 1 << 30,
                 DecryptInfo* info = nullptr) {
  StringSource in(cipher, step);
  StringSink out;
  absl::Status s = Decrypt(keys, &in, &out, info);
  *plain = out.data;
  return s;
}

class RoundTrip : public ::testing::TestWithParam<std::tuple<Format, size_t, size_t>> {};

TEST_P(RoundTrip, DecryptsWhatItEncrypted) {
  auto [format, size, chunk] = GetParam();
  std::string plain = RandomBytes(size, static_cast<uint32_t>(size));
  std::string cipher = Enc(format, plain, chunk, 7777);
  std::string back;
  DecryptInfo info;
  ASSERT_THAT(Dec(cipher, &back, {&K().b, &K().a}, 5000, &info), IsOk());
  EXPECT_EQ(back, plain);
  EXPECT_EQ(info.format, format);
  EXPECT_EQ(info.key_id_hex, K().a.public_key().key_id_hex());
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, RoundTrip,
    ::testing::Combine(::testing::Values(Format::kV2, Format::kV1),
                       ::testing::Values(1, 15, 16, 17, 48, 4096, 3 * (1 << 20) + 5),
                       ::testing::Values(16, kDefaultChunkSize)));

TEST(BackupFormatTest, ZeroCopySourcesGiveTheSameBytesAndChecks) {
  const std::string plain = RandomBytes(100000, 5);
  for (size_t chunk : {size_t{16}, size_t{4096}, kDefaultChunkSize}) {
    // Same secrets: the view path must produce exactly the copy path's bytes.
    FileSecrets sec{std::string(32, '\x01'), std::string(16, '\x02'), std::string(64, '\x03')};
    StringSource a(plain);
    ViewSource b(plain);
    StringSink oa, ob;
    ASSERT_THAT(EncryptWithSecretsForTest(Format::kV2, sec, std::string(384, 'w'),
                                          std::string(32, 'k'), &a, &oa, chunk),
                IsOk());
    ASSERT_THAT(EncryptWithSecretsForTest(Format::kV2, sec, std::string(384, 'w'),
                                          std::string(32, 'k'), &b, &ob, chunk),
                IsOk());
    EXPECT_EQ(oa.data, ob.data);
    // And decryption through views, good and truncated.
    const std::string cipher = Enc(Format::kV2, plain, chunk);
    ViewSource in(cipher);
    StringSink out;
    ASSERT_THAT(Decrypt({&K().a}, &in, &out), IsOk());
    EXPECT_EQ(out.data, plain);
    ViewSource cut(cipher.substr(0, cipher.size() - 1));
    StringSink out2;
    EXPECT_THAT(Decrypt({&K().a}, &cut, &out2), StatusIs(absl::StatusCode::kDataLoss));
    std::string flipped = cipher;
    flipped[cipher.size() / 2] ^= 1;
    ViewSource bad(flipped);
    StringSink out3;
    EXPECT_THAT(Decrypt({&K().a}, &bad, &out3), StatusIs(absl::StatusCode::kDataLoss));
  }
}

TEST(BackupFormatTest, SinksThatTakeBuffersOverSeeTheSameBytes) {
  const std::string plain = RandomBytes(3 * 4096 + 17, 6);
  FileSecrets sec{std::string(32, '\x04'), std::string(16, '\x05'), std::string(64, '\x06')};
  for (bool view : {false, true}) {
    StringSource a(plain);
    ViewSource b(plain);
    ByteSource* src = view ? static_cast<ByteSource*>(&b) : &a;
    StringSink plain_sink;
    SwappingSink swapping;
    StringSource a2(plain);
    ASSERT_THAT(EncryptWithSecretsForTest(Format::kV2, sec, std::string(384, 'w'),
                                          std::string(32, 'k'), &a2, &plain_sink, 4096),
                IsOk());
    ASSERT_THAT(EncryptWithSecretsForTest(Format::kV2, sec, std::string(384, 'w'),
                                          std::string(32, 'k'), src, &swapping, 4096),
                IsOk());
    EXPECT_EQ(swapping.data, plain_sink.data);
    EXPECT_GE(swapping.swaps, 4);
  }
  const std::string cipher = Enc(Format::kV2, plain, 4096);
  for (bool view : {false, true}) {
    StringSource a(cipher);
    ViewSource b(cipher);
    SwappingSink out;
    ASSERT_THAT(Decrypt({&K().a}, view ? static_cast<ByteSource*>(&b) : &a, &out), IsOk());
    EXPECT_EQ(out.data, plain);
    EXPECT_GE(out.swaps, 4);
  }
}

TEST(BackupFormatTest, V2EmptyPlaintextHasHeaderAndFinalChunk) {
  std::string cipher = Enc(Format::kV2, "");
  EXPECT_EQ(cipher.size(), 44u + 384 + 32 + 4 + 32);
  std::string back = "x";
  ASSERT_THAT(Dec(cipher, &back), IsOk());
  EXPECT_EQ(back, "");
}

TEST(BackupFormatTest, V1EmptyPlaintextIsAnEmptyFileAsRohmuWrites) {
  EXPECT_EQ(Enc(Format::kV1, ""), "");
  StringSource in("");
  StringSink out;
  EXPECT_THAT(Decrypt({&K().a}, &in, &out), StatusIs(absl::StatusCode::kDataLoss));
  StringSource in2("");
  EXPECT_THAT(Decrypt({&K().a}, &in2, &out, nullptr, /*accept_empty_v1=*/true), IsOk());
}

TEST(BackupFormatTest, V1OverheadMatchesPghoard) {
  EXPECT_EQ(Enc(Format::kV1, std::string(1000, 'x')).size(), 1000u + 424);
  EXPECT_EQ(Enc(Format::kV1, "x").substr(0, 8), std::string("pghoa1\x01\x80", 8));
}

TEST(BackupFormatTest, WrongKeyIsPermissionDenied) {
  for (Format f : {Format::kV2, Format::kV1}) {
    std::string back;
    EXPECT_THAT(Dec(Enc(f, "secret data"), &back, {&K().b}),
                StatusIs(absl::StatusCode::kPermissionDenied));
    EXPECT_EQ(back, "");
  }
}

// The exit codes the spec promises (docs/backup-format.md, "What a reader
// checks"): on b361d6c a flipped wrapped key was PERMISSION_DENIED (exit 3)
// and an RSA-2048 key for a v2 file too; the spec says 2 and 4.
TEST(BackupFormatTest, AChangedWrappedKeyIsAnIntegrityFailureWhenTheNamedKeyIsGiven) {
  std::string c = Enc(Format::kV2, "secret data");
  c[44 + 100] ^= 0x01;  // inside the wrapped key
  std::string back;
  EXPECT_THAT(Dec(c, &back, {&K().a}), StatusIs(absl::StatusCode::kDataLoss));
  // Without the key it names, nothing proves a change: no key fits.
  EXPECT_THAT(Dec(c, &back, {&K().b}), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(back, "");
}

TEST(BackupFormatTest, OnlyKeysBelow3072BitsIsAnUnusableKey) {
  // RSA-2048: readable for v1 (pghoard's keys), too short for v2.
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  ASSERT_NE(k, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  absl::StatusOr<SecureBuffer> pem = SecureBuffer::Create(static_cast<size_t>(n));
  ASSERT_THAT(pem, IsOk());
  memcpy(pem->data(), data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(k);
  absl::StatusOr<RsaPrivateKey> short_key = RsaPrivateKey::FromPem(*pem);
  ASSERT_THAT(short_key, IsOk());
  std::string back;
  EXPECT_THAT(Dec(Enc(Format::kV2, "secret data"), &back, {&*short_key}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Beside a usable key that does not fit: no key fits.
  EXPECT_THAT(Dec(Enc(Format::kV2, "secret data"), &back, {&*short_key, &K().b}),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(BackupFormatTest, ChunkSizeMustBeAMultipleOf16) {
  StringSource in("data");
  StringSink out;
  EXPECT_THAT(Encrypt(Format::kV2, K().a.public_key(), &in, &out, 17),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// One encoding per plaintext: a final chunk of exactly C bytes (what a
// writer never makes: it ends such input with an empty final chunk) is
// refused. Built by hand from a 32-byte plaintext with C = 16: chunks
// 16 (not final), 16 (not final), 0 (final) -> drop the empty final chunk
// and mark the second one final, with its tag recomputed.
TEST(BackupFormatTest, AFinalChunkOfExactlyCBytesIsRefused) {
  const std::string plain(32, 'p');
  const std::string c = Enc(Format::kV2, plain, 16);
  const size_t header = 44 + 384 + 32;
  const size_t chunk = 4 + 16 + 32;
  ASSERT_EQ(c.size(), header + 2 * chunk + 4 + 32);
  // The file secret, to recompute the tag.
  const std::string wrapped = c.substr(44, 384);
  absl::StatusOr<SecureBuffer> secret = OaepUnwrap(K().a, "SHA256", wrapped);
  ASSERT_THAT(secret, IsOk());
  const std::string mac_key(secret->view().substr(48, 64));
  std::string forged = c.substr(0, header + 2 * chunk);
  const size_t second = header + chunk;
  forged[second] = static_cast<char>(static_cast<uint8_t>(forged[second]) | 0x80);
  std::string msg = c.substr(44 + 384, 32);  // header tag
  msg += std::string("\0\0\0\0\0\0\0\1", 8);
  msg += forged.substr(second, 4 + 16);
  unsigned char tag[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), mac_key.data(), static_cast<int>(mac_key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), tag, &len);
  forged.replace(second + 4 + 16, 32, reinterpret_cast<const char*>(tag), 32);
  std::string back;
  EXPECT_THAT(Dec(forged, &back), StatusIs(absl::StatusCode::kDataLoss));
}

// Every single-bit flip anywhere is refused; v2 never releases a byte of a
// chunk it could not authenticate.
TEST(BackupFormatTest, EveryBitFlipIsRefused) {
  const std::string plain = RandomBytes(40, 1);
  for (Format f : {Format::kV2, Format::kV1}) {
    const std::string cipher = Enc(f, plain, 16);
    for (size_t i = 0; i < cipher.size(); ++i) {
      for (int bit : {0, 7}) {
        std::string bad = cipher;
        bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
        std::string back;
        absl::Status s = Dec(bad, &back);
        ASSERT_FALSE(s.ok()) << "format " << static_cast<int>(f) << " byte " << i;
        if (f == Format::kV2) {
          ASSERT_TRUE(plain.substr(0, back.size()) == back) << "released unauthenticated bytes";
        }
      }
    }
  }
}

TEST(BackupFormatTest, TruncationAtEveryByteIsRefused) {
  const std::string plain = RandomBytes(40, 2);
  for (Format f : {Format::kV2, Format::kV1}) {
    const std::string cipher = Enc(f, plain, 16);
    for (size_t len = 0; len < cipher.size(); ++len) {
      std::string back;
      absl::Status s = Dec(cipher.substr(0, len), &back);
      ASSERT_THAT(s, StatusIs(absl::StatusCode::kDataLoss))
          << "format " << static_cast<int>(f) << " cut at " << len;
    }
  }
}

TEST(BackupFormatTest, AppendedDataIsRefused) {
  for (Format f : {Format::kV2, Format::kV1}) {
    std::string back;
    EXPECT_THAT(Dec(Enc(f, "payload", 16) + "x", &back), StatusIs(absl::StatusCode::kDataLoss));
  }
}

TEST(BackupFormatTest, ReorderedOrReplayedChunksAreRefused) {
  const std::string plain = RandomBytes(48, 3);  // 3 full chunks + empty final
  const std::string cipher = Enc(Format::kV2, plain, 16);
  const size_t header = 44 + 384 + 32, chunk = 4 + 16 + 32;
  std::string swapped = cipher;
  swapped.replace(header, chunk, cipher.substr(header + chunk, chunk));
  swapped.replace(header + chunk, chunk, cipher.substr(header, chunk));
  std::string back;
  EXPECT_THAT(Dec(swapped, &back), StatusIs(absl::StatusCode::kDataLoss));
  // A chunk from another file made with the same key.
  const std::string other = Enc(Format::kV2, plain, 16);
  std::string mixed = cipher;
  mixed.replace(header, chunk, other.substr(header, chunk));
  EXPECT_THAT(Dec(mixed, &back), StatusIs(absl::StatusCode::kDataLoss));
  // Dropping the final chunk, or a middle one.
  EXPECT_THAT(Dec(cipher.substr(0, cipher.size() - (4 + 32)), &back),
              StatusIs(absl::StatusCode::kDataLoss));
  std::string dropped = cipher;
  dropped.erase(header + chunk, chunk);
  EXPECT_THAT(Dec(dropped, &back), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(BackupFormatTest, UnknownVersionAndForeignInput) {
  std::string cipher = Enc(Format::kV2, "x");
  cipher[4] = 3;
  std::string back;
  EXPECT_THAT(Dec(cipher, &back), StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_THAT(Dec("PK\x03\x04 a zip file", &back), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BackupKeysTest, RefusesShortAndNonRsaKeys) {
  EXPECT_THAT(RsaPrivateKey::Generate(2048), StatusIs(absl::StatusCode::kInvalidArgument));
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, ec);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY* rsa2048 = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, rsa2048);
  len = BIO_get_mem_data(bio, &data);
  std::string pem2048(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(ec);
  EVP_PKEY_free(rsa2048);
  EXPECT_THAT(RsaPublicKey::FromPem(pem), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RsaPublicKey::FromPem(pem2048), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RsaPublicKey::FromPem("garbage"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BackupKeysTest, PemRoundTripKeepsKeyId) {
  auto pem = K().a.ToPkcs8Pem();
  ASSERT_THAT(pem, IsOk());
  auto back = RsaPrivateKey::FromPem(*pem);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->public_key().key_id(), K().a.public_key().key_id());
  auto pub = RsaPublicKey::FromPem(K().a.public_key().ToPem());
  ASSERT_THAT(pub, IsOk());
  EXPECT_EQ(pub->key_id(), K().a.public_key().key_id());
  EXPECT_EQ(pub->key_id().size(), 32u);
}

// ---- test vectors (docs/backup-format.md) ----

std::string Hex(absl::string_view s) { return HexEncode(s); }
std::string Unhex(absl::string_view h) { return absl::HexStringToBytes(h); }

FileSecrets V2Secrets() {
  return {Unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
          Unhex("0123456789abcdefffffffffffffff00"),
          Unhex(std::string(128, 'a'))};
}

// The spec, transcribed with raw OpenSSL calls: header, header tag, chunks.
std::string SpecV2(const FileSecrets& s, absl::string_view wrapped, absl::string_view key_id,
                   const std::string& plain, size_t chunk) {
  auto hmac = [&](const std::string& d) {
    unsigned char out[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), s.mac_key.data(), static_cast<int>(s.mac_key.size()),
         reinterpret_cast<const unsigned char*>(d.data()), d.size(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
  };
  std::string h = std::string("NWBK\x02\x00", 6);
  h += std::string{static_cast<char>(wrapped.size() >> 8), static_cast<char>(wrapped.size() & 255)};
  h += std::string(key_id);
  h += std::string{static_cast<char>(chunk >> 24), static_cast<char>((chunk >> 16) & 255),
                   static_cast<char>((chunk >> 8) & 255), static_cast<char>(chunk & 255)};
  h += std::string(wrapped);
  const std::string htag = hmac(h);
  std::string out = h + htag;
  // CTR over the whole plaintext at once.
  std::string ct(plain.size(), '\0');
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int outl = 0;
  EVP_EncryptInit_ex(c, EVP_aes_256_ctr(), nullptr,
                     reinterpret_cast<const unsigned char*>(s.aes_key.data()),
                     reinterpret_cast<const unsigned char*>(s.iv.data()));
  EVP_EncryptUpdate(c, reinterpret_cast<unsigned char*>(ct.data()), &outl,
                    reinterpret_cast<const unsigned char*>(plain.data()),
                    static_cast<int>(plain.size()));
  EVP_CIPHER_CTX_free(c);
  size_t pos = 0;
  for (uint64_t i = 0;; ++i) {
    size_t n = std::min(chunk, ct.size() - pos);
    bool final = n < chunk;
    uint32_t info = static_cast<uint32_t>(n) | (final ? 0x80000000u : 0);
    std::string inf{static_cast<char>(info >> 24), static_cast<char>((info >> 16) & 255),
                    static_cast<char>((info >> 8) & 255), static_cast<char>(info & 255)};
    std::string idx(8, '\0');
    for (int b = 0; b < 8; ++b) idx[7 - b] = static_cast<char>((i >> (8 * b)) & 255);
    out += inf + ct.substr(pos, n) + hmac(htag + idx + inf + ct.substr(pos, n));
    pos += n;
    if (final) break;
  }
  return out;
}

TEST(BackupVectorsTest, V2MatchesSpecTranscription) {
  const FileSecrets s = V2Secrets();
  const std::string wrapped(384, '\x5a');
  const std::string key_id(32, '\x11');
  for (size_t size : {0, 15, 16, 40, 5000}) {
    const std::string plain = RandomBytes(size, 9);
    StringSource in(plain);
    StringSink out;
    ASSERT_THAT(EncryptWithSecretsForTest(Format::kV2, s, wrapped, key_id, &in, &out, 16), IsOk());
    EXPECT_EQ(Hex(out.data), Hex(SpecV2(s, wrapped, key_id, plain, 16))) << size;
  }
}

// docs/backup-format.md, "Test vector": everything after the 428-byte header
// prefix (fixed fields + wrapped key), hex.
constexpr char kV2VectorBody[] =
    "3492f0788cae6e993aa5df98e1ffb63967461bfb6b8b7cff49c503149d59b704"   // header tag
    "00000010"                                                            // chunk 0: 16 bytes
    "2532f6b501a583d6e87dacc2ff6a2c47"
    "3193842ead670de05a174f063a9f4dcffe3d31341c2ad191a5559a2feb2e11ad"
    "00000010"                                                            // chunk 1: 16 bytes
    "a732c9231f92f8abdb83cafbd870d99c"
    "631c208a8cd57c33c4116791ba193b615d57b05c44c3b3793e4434536415eb3a"
    "80000008"                                                            // chunk 2: final, 8
    "a98a084d98226ff1"
    "79ad9fd322affce75c9bf6f913cd273d01b36d936711b31175e299d2e26d28ac";

// The documented vector: "nodeward backup\n" + 24 more bytes, chunk size 16.
TEST(BackupVectorsTest, V2DocumentedVector) {
  const std::string plain = "nodeward backup v2 test vector, 40 bytes";
  ASSERT_EQ(plain.size(), 40u);
  StringSource in(plain);
  StringSink out;
  ASSERT_THAT(EncryptWithSecretsForTest(Format::kV2, V2Secrets(), std::string(384, '\x5a'),
                                        std::string(32, '\x11'), &in, &out, 16),
              IsOk());
  const std::string body = Hex(out.data.substr(44 + 384));
  EXPECT_EQ(body, kV2VectorBody);
}

// v1's counter is the whole 128-bit block: with this IV the low 64 bits
// carry after 256 blocks, where a 64-bit counter would go wrong.
TEST(BackupVectorsTest, V1CounterCarriesAcrossAll128Bits) {
  FileSecrets s{Unhex("000102030405060708090a0b0c0d0e0f"), Unhex("0123456789abcdefffffffffffffff00"),
                Unhex(std::string(64, 'b'))};
  const std::string plain(300 * 16, '\0');
  StringSource in(plain);
  StringSink out;
  const std::string wrapped(384, '\x33');
  ASSERT_THAT(EncryptWithSecretsForTest(Format::kV1, s, wrapped, "", &in, &out, 0), IsOk());
  ASSERT_EQ(out.data.size(), 8 + 384 + plain.size() + 32);
  const std::string ct = out.data.substr(8 + 384, plain.size());
  // Keystream = AES-ECB(counter), counter a 128-bit big-endian integer.
  unsigned char counter[16];
  std::memcpy(counter, s.iv.data(), 16);
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), nullptr,
                     reinterpret_cast<const unsigned char*>(s.aes_key.data()), nullptr);
  EVP_CIPHER_CTX_set_padding(c, 0);
  for (size_t blk = 0; blk < 300; ++blk) {
    unsigned char ks[16];
    int outl = 0;
    EVP_EncryptUpdate(c, ks, &outl, counter, 16);
    ASSERT_EQ(0, std::memcmp(ks, ct.data() + 16 * blk, 16)) << "block " << blk;
    for (int i = 15; i >= 0 && ++counter[i] == 0; --i) {
    }
  }
  EVP_CIPHER_CTX_free(c);
  // Tag: HMAC-SHA256 over the ciphertext only.
  unsigned char tag[32];
  unsigned int tl = 0;
  HMAC(EVP_sha256(), s.mac_key.data(), 32, reinterpret_cast<const unsigned char*>(ct.data()),
       ct.size(), tag, &tl);
  EXPECT_EQ(Hex(out.data.substr(out.data.size() - 32)),
            Hex(absl::string_view(reinterpret_cast<char*>(tag), 32)));
}

}  // namespace
}  // namespace nodeward::backup
