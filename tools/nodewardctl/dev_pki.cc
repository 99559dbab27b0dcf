#include "tools/nodewardctl/dev_pki.h"

#include <arpa/inet.h>

#include <algorithm>

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nodeward {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

KeyPtr NewKey() { return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free); }

void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext != nullptr) {
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
}

struct CertSpec {
  std::string cn;
  bool is_ca = false;
  std::string san;          // "DNS:x,IP:y" or "URI:z"
  std::string eku;          // serverAuth / clientAuth
  long not_before_offset = -3600;
  long not_after_offset = 86400L * 365;
};

CertPtr MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  CertPtr cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before_offset);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after_offset);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("nodeward dev"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509* iss = issuer == nullptr ? cert.get() : issuer;
  X509_set_issuer_name(cert.get(), X509_get_subject_name(iss));
  X509_set_pubkey(cert.get(), key);
  if (spec.is_ca) {
    AddExt(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    AddExt(cert.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
    AddExt(cert.get(), iss, NID_key_usage, "critical,digitalSignature");
    AddExt(cert.get(), iss, NID_ext_key_usage, spec.eku);
    AddExt(cert.get(), iss, NID_subject_alt_name, spec.san);
  }
  AddExt(cert.get(), iss, NID_subject_key_identifier, "hash");
  X509_sign(cert.get(), issuer_key == nullptr ? key : issuer_key, EVP_sha256());
  return cert;
}

absl::Status WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("create ", path));
  fchmod(fd, mode);
  ssize_t n = write(fd, data.data(), data.size());
  close(fd);
  if (n != static_cast<ssize_t>(data.size())) return absl::ErrnoToStatus(errno, absl::StrCat("write ", path));
  return absl::OkStatus();
}

std::string CertPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string KeyPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

absl::Status WritePair(const std::string& dir, const std::string& name, X509* cert, EVP_PKEY* key) {
  absl::Status s = WriteFile(absl::StrCat(dir, "/", name, ".pem"), CertPem(cert), 0644);
  if (!s.ok()) return s;
  return WriteFile(absl::StrCat(dir, "/", name, ".key"), KeyPem(key), 0600);
}

// A CRL from `ca` revoking `revoked`, written as <subject hash>.r0.
absl::Status WriteCrl(const std::string& dir, X509* ca, EVP_PKEY* ca_key, X509* revoked) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("create CRL directory ", dir));
  }
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), X509_CRL_free);
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca));
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> now(ASN1_TIME_new(), ASN1_TIME_free);
  X509_gmtime_adj(now.get(), -3600);
  X509_CRL_set1_lastUpdate(crl.get(), now.get());
  X509_gmtime_adj(now.get(), 86400L * 30);
  X509_CRL_set1_nextUpdate(crl.get(), now.get());
  X509_REVOKED* entry = X509_REVOKED_new();
  X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(revoked));
  X509_gmtime_adj(now.get(), -60);
  X509_REVOKED_set_revocationDate(entry, now.get());
  X509_CRL_add0_revoked(crl.get(), entry);
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), ca_key, EVP_sha256()) == 0) {
    return absl::InternalError("sign dev CRL: OpenSSL failed");
  }
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_CRL(bio, crl.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  char name[32];
  snprintf(name, sizeof(name), "%08lx.r0", X509_NAME_hash_ex(X509_get_subject_name(ca), nullptr,
                                                             nullptr, nullptr));
  return WriteFile(absl::StrCat(dir, "/", name), pem, 0644);
}

}  // namespace

absl::Status GenerateDevPki(const DevPkiOptions& o) {
  if (mkdir(o.out_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("create PKI directory ", o.out_dir));
  }
  KeyPtr ca_key = NewKey();
  if (!ca_key) return absl::InternalError("generate CA key: OpenSSL failed");
  CertPtr ca = MakeCert({"nodeward dev CA", true, "", "", -3600, 86400L * 3650}, ca_key.get(),
                        nullptr, nullptr);
  absl::Status s = WritePair(o.out_dir, "ca", ca.get(), ca_key.get());
  if (!s.ok()) return s;

  KeyPtr server_key = NewKey();
  std::string sans = absl::StrCat("DNS:", o.server_dns, ",IP:", o.server_ip, ",IP:::1");
  if (!o.server_sans.empty()) {
    std::vector<std::string> parts;
    for (const std::string& n : o.server_sans) {
      in6_addr a6{};
      in_addr a4{};
      const bool ip = inet_pton(AF_INET, n.c_str(), &a4) == 1 || inet_pton(AF_INET6, n.c_str(), &a6) == 1;
      if (n.empty() || n.find_first_of(", \t") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("dev-pki: --server-san '", n, "' is not a name"));
      }
      parts.push_back(absl::StrCat(ip ? "IP:" : "DNS:", n));
    }
    if (std::find(o.server_sans.begin(), o.server_sans.end(), "::1") == o.server_sans.end()) {
      parts.push_back("IP:::1");
    }
    sans = absl::StrJoin(parts, ",");
  }
  CertSpec server{"nodeward-agent", false, sans, "serverAuth"};
  CertPtr server_cert = MakeCert(server, server_key.get(), ca.get(), ca_key.get());
  if (s = WritePair(o.out_dir, "server", server_cert.get(), server_key.get()); !s.ok()) return s;

  KeyPtr client_key = NewKey();
  CertSpec client{"orchestrator", false, absl::StrCat("URI:", o.client_uri), "clientAuth"};
  CertPtr client_cert = MakeCert(client, client_key.get(), ca.get(), ca_key.get());
  if (s = WritePair(o.out_dir, "client", client_cert.get(), client_key.get()); !s.ok()) return s;

  if (!o.with_test_certs) return absl::OkStatus();
  KeyPtr other_ca_key = NewKey();
  CertPtr other_ca = MakeCert({"unrelated CA", true, "", "", -3600, 86400L * 3650},
                              other_ca_key.get(), nullptr, nullptr);
  KeyPtr k1 = NewKey();
  CertPtr other = MakeCert(client, k1.get(), other_ca.get(), other_ca_key.get());
  if (s = WritePair(o.out_dir, "other-ca-client", other.get(), k1.get()); !s.ok()) return s;
  KeyPtr k2 = NewKey();
  CertSpec expired = client;
  expired.not_before_offset = -86400L * 10;
  expired.not_after_offset = -86400L;
  CertPtr exp = MakeCert(expired, k2.get(), ca.get(), ca_key.get());
  if (s = WritePair(o.out_dir, "expired-client", exp.get(), k2.get()); !s.ok()) return s;
  KeyPtr k3 = NewKey();
  CertSpec future = client;
  future.not_before_offset = 86400L;
  future.not_after_offset = 86400L * 10;
  CertPtr fut = MakeCert(future, k3.get(), ca.get(), ca_key.get());
  if (s = WritePair(o.out_dir, "not-yet-valid-client", fut.get(), k3.get()); !s.ok()) return s;
  KeyPtr k4 = NewKey();
  CertSpec wrong_san = client;
  wrong_san.san = "URI:spiffe://nodeward.dev/somebody-else";
  CertPtr ws = MakeCert(wrong_san, k4.get(), ca.get(), ca_key.get());
  if (s = WritePair(o.out_dir, "wrong-san-client", ws.get(), k4.get()); !s.ok()) return s;
  KeyPtr k6 = NewKey();
  CertSpec server_eku = client;  // a client certificate made for servers only
  server_eku.eku = "serverAuth";
  CertPtr se = MakeCert(server_eku, k6.get(), ca.get(), ca_key.get());
  if (s = WritePair(o.out_dir, "server-eku-client", se.get(), k6.get()); !s.ok()) return s;
  KeyPtr k5 = NewKey();
  CertPtr revoked = MakeCert(client, k5.get(), ca.get(), ca_key.get());
  if (s = WritePair(o.out_dir, "revoked-client", revoked.get(), k5.get()); !s.ok()) return s;
  return WriteCrl(o.out_dir + "/crl", ca.get(), ca_key.get(), revoked.get());
}

}  // namespace nodeward
