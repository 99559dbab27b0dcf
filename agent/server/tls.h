#ifndef NODEWARD_AGENT_SERVER_TLS_H_
#define NODEWARD_AGENT_SERVER_TLS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"
#include "nodeward/v1/config.pb.h"

namespace nodeward {

// TLS 1.2 suites the agent allows: ECDHE key exchange with AEAD ciphers only.
// gRPC 1.51 reads them from GRPC_SSL_CIPHER_SUITES; TLS 1.3 suites (all AEAD)
// are OpenSSL's defaults. See docs/transport.md.
inline constexpr char kTls12CipherSuites[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Pins the TLS 1.2 suites for this process. Call before gRPC starts.
void PinTlsCipherSuites();

// Mutual-TLS server credentials on gRPC's certificate-provider API (a file
// watcher, so a rotated key/cert pair is picked up without a restart). The
// client certificate is required and verified against client_ca_file.
// FAILED_PRECONDITION naming the file if any TLS material is missing,
// unreadable, not PEM, or the key does not match the certificate.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> BuildServerCredentials(
    const nodeward::v1::TlsConfig& tls);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_TLS_H_
