// OpenSSL's secure heap: once enabled, the private parts of the keys this
// project loads (RSA backup keys, Ed25519 orchestrator keys, an EC TLS key as
// gRPC reads it) are allocated there, not in the ordinary heap.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

#include "agent/backup/backup_keys.h"
#include "agent/common/crypto.h"
#include "agent/common/secure_buffer.h"
#include "gtest/gtest.h"

namespace nodeward {
namespace {

class SecureHeapTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Unprivileged mlock of 1 MiB fits the default RLIMIT_MEMLOCK (8 MiB).
    ASSERT_TRUE(EnableOpenSslSecureHeap(1 << 20).ok());
  }
};

TEST_F(SecureHeapTest, EnablingTwiceIsHarmless) {
  EXPECT_TRUE(CRYPTO_secure_malloc_initialized());
  EXPECT_TRUE(EnableOpenSslSecureHeap(1 << 20).ok());
}

TEST_F(SecureHeapTest, RsaPrivateKeyLoadedFromPemLivesThere) {
  SecureBuffer pem = [] {
    auto generated = backup::RsaPrivateKey::Generate();
    EXPECT_TRUE(generated.ok());
    return generated->ToPkcs8Pem().value();
  }();
  const size_t before = CRYPTO_secure_used();
  {
    auto key = backup::RsaPrivateKey::FromPem(pem);
    ASSERT_TRUE(key.ok()) << key.status();
    // d, p, q, dmp1, dmq1, iqmp of a 3072-bit key: over 1 KiB.
    EXPECT_GT(CRYPTO_secure_used(), before + 1024);
  }
  EXPECT_EQ(CRYPTO_secure_used(), before) << "freed and cleansed with the key";
}

TEST_F(SecureHeapTest, Ed25519PrivateKeyLivesThere) {
  SecureBuffer pem = Ed25519PrivateKey::Generate().value().ToPem().value();
  const size_t before = CRYPTO_secure_used();
  {
    auto key = Ed25519PrivateKey::FromPem(pem);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_GE(CRYPTO_secure_used(), before + 32);
  }
  EXPECT_EQ(CRYPTO_secure_used(), before);
}

TEST_F(SecureHeapTest, EcTlsKeyReadTheWayGrpcReadsItLivesThere) {
  std::string pem;
  {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(EVP_EC_gen("P-256"), EVP_PKEY_free);
    ASSERT_NE(k, nullptr);
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    ASSERT_EQ(PEM_write_bio_PrivateKey(out.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr),
              1);
    char* data = nullptr;
    long len = BIO_get_mem_data(out.get(), &data);
    pem.assign(data, static_cast<size_t>(len));
  }
  const size_t before = CRYPTO_secure_used();
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  ASSERT_NE(key, nullptr);
  EXPECT_GT(CRYPTO_secure_used(), before);
  key.reset();
  EXPECT_EQ(CRYPTO_secure_used(), before);
}

}  // namespace
}  // namespace nodeward
