#include "agent/cert/x509.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/crypto.h"
#include "agent/common/reason.h"

namespace nodeward::cert {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

absl::Status OpenSslError(absl::string_view what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = {0};
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(what, ": OpenSSL failed", e != 0 ? ": " : "", buf));
}

absl::Time FromAsn1(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromUnixSeconds(timegm(&tm));
}

std::string NameText(X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

absl::StatusOr<KeyPtr> GenerateKey(KeyType type) {
  EVP_PKEY* k = nullptr;
  switch (type) {
    case nodeward::v1::CertificateTarget::ED25519:
      k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
    case nodeward::v1::CertificateTarget::RSA_3072:
      k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(3072));
      break;
    default:
      k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
  }
  if (k == nullptr) return OpenSslError("generate certificate key");
  return KeyPtr(k);
}

std::string KeyTypeName(KeyType type) {
  switch (type) {
    case nodeward::v1::CertificateTarget::ED25519:
      return "ed25519";
    case nodeward::v1::CertificateTarget::RSA_3072:
      return "rsa-3072";
    default:
      return "ecdsa-p256";
  }
}

std::string SpkiSha256(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return "";
  std::string out = HexEncode(Sha256(absl::string_view(reinterpret_cast<char*>(der),
                                                       static_cast<size_t>(len))));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<SecureBuffer> KeyToPem(EVP_PKEY* key) { return PrivateKeyToPkcs8Pem(key); }

absl::StatusOr<KeyPtr> KeyFromPem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (k == nullptr) {
    ERR_clear_error();
    return absl::DataLossError("the pending certificate key does not parse");
  }
  return KeyPtr(k);
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

absl::StatusOr<std::string> MakeCsrPem(EVP_PKEY* key, const std::string& common_name,
                                       const std::vector<std::string>& sans) {
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), X509_REQ_free);
  if (!req || X509_REQ_set_version(req.get(), 0) != 1) return OpenSslError("make CSR");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key) != 1) {
    return OpenSslError("make CSR subject");
  }
  if (!sans.empty()) {
    std::vector<std::string> parts;
    for (const std::string& s : sans) parts.push_back(absl::StrCat(IsIpAddress(s) ? "IP:" : "DNS:", s));
    const std::string value = absl::StrJoin(parts, ",");
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, value.c_str());
    if (ext == nullptr) return OpenSslError("make CSR subjectAltName");
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(exts, ext);
    const int ok = X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (ok != 1) return OpenSslError("add CSR extensions");
  }
  const EVP_MD* md = EVP_PKEY_is_a(key, "ED25519") ? nullptr : EVP_sha256();
  if (X509_REQ_sign(req.get(), key, md) <= 0) return OpenSslError("sign CSR");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) return OpenSslError("encode CSR");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<std::vector<CertPtr>> ParseCertificates(absl::string_view pem, size_t max) {
  std::vector<CertPtr> out;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError("read PEM");
  while (true) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      ERR_clear_error();
      break;
    }
    const bool is_cert = std::strcmp(name, "CERTIFICATE") == 0;
    const unsigned char* p = data;
    X509* c = is_cert ? d2i_X509(nullptr, &p, len) : nullptr;
    const bool whole = c != nullptr && p == data + len;
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    if (!whole) {
      X509_free(c);
      ERR_clear_error();
      return Reject(absl::StatusCode::kInvalidArgument, reason::kCertPemInvalid,
                    absl::StrCat("PEM block ", out.size() + 1, " is not one DER certificate"));
    }
    out.emplace_back(c);
    if (out.size() > max) {
      return Reject(absl::StatusCode::kInvalidArgument, reason::kCertChainTooLong,
                    absl::StrCat("more than ", max, " certificates"));
    }
  }
  if (out.empty()) {
    return Reject(absl::StatusCode::kInvalidArgument, reason::kCertPemInvalid,
                  "no PEM CERTIFICATE block");
  }
  return out;
}

CertFacts FactsOf(X509* cert) {
  CertFacts f;
  f.not_before = FromAsn1(X509_get0_notBefore(cert));
  f.not_after = FromAsn1(X509_get0_notAfter(cert));
  f.spki_sha256 = SpkiSha256(X509_get0_pubkey(cert));
  f.subject = NameText(X509_get_subject_name(cert));
  f.issuer = NameText(X509_get_issuer_name(cert));
  GENERAL_NAMES* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) {
      const ASN1_IA5STRING* s = n->d.dNSName;
      f.sans.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                          static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (n->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = n->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {0};
      const int len = ASN1_STRING_length(ip);
      if (len == 4 || len == 16) {
        inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), text, sizeof(text));
        f.sans.emplace_back(text);
      }
    } else {
      f.sans.push_back(absl::StrCat("<type ", n->type, ">"));  // never allowed
    }
  }
  GENERAL_NAMES_free(names);
  return f;
}

absl::Status VerifyChain(const std::vector<CertPtr>& chain, const std::vector<CertPtr>& roots,
                         absl::Time at, Usage usage) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> untrusted(
      sk_X509_new_null(), [](STACK_OF(X509)* s) { sk_X509_free(s); });
  if (!store || !untrusted) return OpenSslError("verify chain");
  for (const CertPtr& r : roots) X509_STORE_add_cert(store.get(), r.get());
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  const bool server = usage != nodeward::v1::CertificateTarget::CLIENT;
  const bool client = usage == nodeward::v1::CertificateTarget::CLIENT ||
                      usage == nodeward::v1::CertificateTarget::SERVER_AND_CLIENT;
  for (int purpose : {X509_PURPOSE_SSL_SERVER, X509_PURPOSE_SSL_CLIENT}) {
    if ((purpose == X509_PURPOSE_SSL_SERVER && !server) ||
        (purpose == X509_PURPOSE_SSL_CLIENT && !client)) {
      continue;
    }
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                         X509_STORE_CTX_free);
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get()) != 1) {
      return OpenSslError("verify chain");
    }
    X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(at));
    X509_STORE_CTX_set_purpose(ctx.get(), purpose);
    X509_VERIFY_PARAM_set_depth(X509_STORE_CTX_get0_param(ctx.get()), 8);
    if (X509_verify_cert(ctx.get()) != 1) {
      const int err = X509_STORE_CTX_get_error(ctx.get());
      ERR_clear_error();
      const char* what = X509_verify_cert_error_string(err);
      if (err == X509_V_ERR_INVALID_PURPOSE) {
        return Reject(absl::StatusCode::kInvalidArgument, reason::kCertUsageWrong,
                      absl::StrCat("the certificate is not for ",
                                   purpose == X509_PURPOSE_SSL_SERVER ? "serverAuth" : "clientAuth",
                                   " (", what, ")"));
      }
      return Reject(absl::StatusCode::kInvalidArgument, reason::kCertChainUntrusted,
                    absl::StrCat("the chain does not verify to the CA bundle: ", what));
    }
  }
  return absl::OkStatus();
}

}  // namespace nodeward::cert
