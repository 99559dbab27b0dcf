#ifndef NODEWARD_TESTS_COMMON_TEST_CA_H_
#define NODEWARD_TESTS_COMMON_TEST_CA_H_

// A throwaway CA for certificate tests: issues leaves for a CSR's key (or
// any key) with the SANs, EKU and validity a test asks for. Test-only.

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace nodeward::testing {

class TestCa {
 public:
  explicit TestCa(const std::string& name, absl::Time now) {
    key_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    cert_ = Make(name, key_, nullptr, key_, now - absl::Hours(1), now + absl::Hours(24 * 3650), "",
                 "", true);
  }
  // An existing CA (e.g. dev-pki's ca.pem and ca.key).
  TestCa(const std::string& cert_pem, const std::string& key_pem) {
    BIO* b = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
    cert_ = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
    key_ = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
  }
  ~TestCa() {
    X509_free(cert_);
    EVP_PKEY_free(key_);
  }
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  std::string Pem() const { return ToPem(cert_); }

  struct Leaf {
    std::vector<std::string> sans = {"db-7.internal"};
    std::string eku = "serverAuth";
    absl::Time not_before;
    absl::Time not_after;
  };
  // A leaf for `pub` signed by this CA.
  std::string Issue(EVP_PKEY* pub, const Leaf& l) const {
    std::vector<std::string> parts;
    for (const auto& s : l.sans) {
      unsigned char b[16];
      const bool ip = inet_pton(AF_INET, s.c_str(), b) == 1 || inet_pton(AF_INET6, s.c_str(), b) == 1;
      parts.push_back(absl::StrCat(ip ? "IP:" : "DNS:", s));
    }
    X509* c = Make("leaf", pub, cert_, key_, l.not_before, l.not_after, absl::StrJoin(parts, ","),
                   l.eku, false);
    std::string pem = ToPem(c);
    X509_free(c);
    return pem;
  }
  // The public key of a CSR (PEM); the caller frees it.
  static EVP_PKEY* CsrKey(const std::string& csr) {
    BIO* b = BIO_new_mem_buf(csr.data(), static_cast<int>(csr.size()));
    X509_REQ* r = PEM_read_bio_X509_REQ(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    if (r == nullptr) return nullptr;
    EVP_PKEY* k = X509_REQ_get_pubkey(r);
    X509_REQ_free(r);
    return k;
  }

 private:
  static std::string ToPem(X509* c) {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, c);
    char* d = nullptr;
    long n = BIO_get_mem_data(b, &d);
    std::string out(d, static_cast<size_t>(n));
    BIO_free(b);
    return out;
  }
  static void Ext(X509* c, X509* issuer, int nid, const std::string& v) {
    if (v.empty()) return;
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, c, nullptr, nullptr, 0);
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, v.c_str());
    X509_add_ext(c, e, -1);
    X509_EXTENSION_free(e);
  }
  static X509* Make(const std::string& cn, EVP_PKEY* pub, X509* issuer, EVP_PKEY* issuer_key,
                    absl::Time nb, absl::Time na, const std::string& sans, const std::string& eku,
                    bool ca) {
    static long serial = 1;
    X509* c = X509_new();
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    ASN1_TIME_set(X509_getm_notBefore(c), absl::ToTimeT(nb));
    ASN1_TIME_set(X509_getm_notAfter(c), absl::ToTimeT(na));
    X509_NAME* n = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(c, issuer != nullptr ? X509_get_subject_name(issuer) : n);
    X509_set_pubkey(c, pub);
    X509* iss = issuer != nullptr ? issuer : c;
    Ext(c, iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    Ext(c, iss, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    Ext(c, iss, NID_subject_key_identifier, "hash");
    if (issuer != nullptr) Ext(c, iss, NID_authority_key_identifier, "keyid");
    Ext(c, iss, NID_subject_alt_name, sans);
    Ext(c, iss, NID_ext_key_usage, eku);
    X509_sign(c, issuer_key, EVP_sha256());
    return c;
  }

  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
};

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_COMMON_TEST_CA_H_
