#ifndef NODEWARD_AGENT_CERT_X509_H_
#define NODEWARD_AGENT_CERT_X509_H_

// OpenSSL pieces of certificate management: key generation, CSRs, chain
// parsing and verification, the facts health reports. Pure (no files).

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/secure_buffer.h"
#include "nodeward/v1/config.pb.h"

namespace nodeward::cert {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;
using KeyType = nodeward::v1::CertificateTarget::KeyType;
using Usage = nodeward::v1::CertificateTarget::Usage;

// A fresh key pair (ECDSA P-256 for KEY_TYPE_UNSPECIFIED).
absl::StatusOr<KeyPtr> GenerateKey(KeyType type);
std::string KeyTypeName(KeyType type);

// Hex SHA-256 of the DER SubjectPublicKeyInfo.
std::string SpkiSha256(EVP_PKEY* key);

// PKCS#8 PEM of a private key, in locked memory, and back.
absl::StatusOr<SecureBuffer> KeyToPem(EVP_PKEY* key);
absl::StatusOr<KeyPtr> KeyFromPem(absl::string_view pem);

// A PKCS#10 CSR (PEM) signed by `key`: subject CN, the SANs as a requested
// extension (IP addresses as iPAddress, everything else as dNSName).
absl::StatusOr<std::string> MakeCsrPem(EVP_PKEY* key, const std::string& common_name,
                                       const std::vector<std::string>& sans);

// True for an IPv4 or IPv6 address in text form.
bool IsIpAddress(const std::string& s);

// The certificates of a PEM text, in order. INVALID_ARGUMENT with reason
// CERT_PEM_INVALID for anything but PEM CERTIFICATE blocks (or none),
// CERT_CHAIN_TOO_LONG above `max`.
absl::StatusOr<std::vector<CertPtr>> ParseCertificates(absl::string_view pem, size_t max);

struct CertFacts {
  absl::Time not_before;
  absl::Time not_after;
  std::string spki_sha256;
  std::string subject;
  std::string issuer;
  std::vector<std::string> sans;  // DNS names and IP addresses, as text
};
CertFacts FactsOf(X509* cert);

// The chain (leaf, then intermediates) verifies to one of `roots` at `at`,
// for `usage` (OpenSSL's ssl_server / ssl_client purposes: the EKU must be
// absent or include serverAuth / clientAuth). Reasons CERT_USAGE_WRONG or
// CERT_CHAIN_UNTRUSTED.
absl::Status VerifyChain(const std::vector<CertPtr>& chain, const std::vector<CertPtr>& roots,
                         absl::Time at, Usage usage);

}  // namespace nodeward::cert

#endif  // NODEWARD_AGENT_CERT_X509_H_
