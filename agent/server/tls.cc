#include "agent/server/tls.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "agent/common/secure_buffer.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace nodeward {
namespace {

absl::Status Bad(const std::string& file, absl::string_view what) {
  return absl::FailedPreconditionError(absl::StrCat("load TLS material ", file, ": ", what));
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

absl::StatusOr<X509*> ReadCert(const std::string& file) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) return Bad(file, "cannot open");
  X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (cert == nullptr) return Bad(file, "no PEM certificate");
  return cert;
}

}  // namespace

void PinTlsCipherSuites() { setenv("GRPC_SSL_CIPHER_SUITES", kTls12CipherSuites, 1); }

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> BuildServerCredentials(
    const nodeward::v1::TlsConfig& tls) {
  if (tls.server_cert_file().empty() || tls.server_key_file().empty() ||
      tls.client_ca_file().empty()) {
    return absl::FailedPreconditionError(
        "load TLS material: tls.server_cert_file, tls.server_key_file and tls.client_ca_file are "
        "all required (there is no plaintext listener)");
  }
  absl::StatusOr<X509*> cert = ReadCert(tls.server_cert_file());
  if (!cert.ok()) return cert.status();
  std::unique_ptr<X509, decltype(&X509_free)> cert_owner(*cert, X509_free);
  absl::StatusOr<X509*> ca = ReadCert(tls.client_ca_file());
  if (!ca.ok()) return ca.status();
  X509_free(*ca);
  {
    // The key's PEM text goes from the file into locked memory only (no
    // stdio buffer), and OpenSSL decodes it into its secure heap.
    absl::StatusOr<SecureBuffer> pem = SecureBuffer::ReadFile(tls.server_key_file(), 64 << 10);
    if (!pem.ok()) return Bad(tls.server_key_file(), pem.status().message());
    std::unique_ptr<BIO, BioFree> bio(
        BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
    if (!bio) return Bad(tls.server_key_file(), "cannot open");
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    if (key == nullptr) return Bad(tls.server_key_file(), "no PEM private key");
    int match = X509_check_private_key(*cert, key);
    EVP_PKEY_free(key);
    if (match != 1) return Bad(tls.server_key_file(), "does not match the server certificate");
  }
  unsigned int refresh = tls.refresh_interval_seconds() == 0 ? 600 : tls.refresh_interval_seconds();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.server_key_file(), tls.server_cert_file(), tls.client_ca_file(), refresh);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!tls.crl_directory().empty()) {
    struct stat st;
    if (stat(tls.crl_directory().c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Bad(tls.crl_directory(), "CRL directory does not exist");
    }
    options.set_crl_directory(tls.crl_directory());
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace nodeward
