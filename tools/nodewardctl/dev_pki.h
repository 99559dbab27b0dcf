#ifndef NODEWARD_TOOLS_NODEWARDCTL_DEV_PKI_H_
#define NODEWARD_TOOLS_NODEWARDCTL_DEV_PKI_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace nodeward {

struct DevPkiOptions {
  std::string out_dir;
  // Server certificate SANs (DNS names and IP addresses).
  std::string server_dns = "localhost";
  std::string server_ip = "127.0.0.1";
  // Names for the agent's certificate (DNS names or IP addresses); when
  // given, they replace server_dns and server_ip (::1 is always added).
  std::vector<std::string> server_sans;
  // Client (orchestrator) certificate SAN URI.
  std::string client_uri = "spiffe://nodeward.dev/orchestrator";
  // Also write certificates that tests expect to be refused:
  // other-ca-client.{pem,key} (issued by an unrelated CA),
  // expired-client.{pem,key}, not-yet-valid-client.{pem,key},
  // wrong-san-client.{pem,key}, revoked-client.{pem,key}, and crl/ holding
  // the CA's CRL that revokes revoked-client (hashed name, as openssl rehash).
  bool with_test_certs = false;
};

// A throwaway PKI for development and tests, all EC P-256, written to
// out_dir (created 0700; keys 0600): ca.pem, ca.key, server.pem, server.key,
// client.pem, client.key. Never for production.
absl::Status GenerateDevPki(const DevPkiOptions& options);

}  // namespace nodeward

#endif  // NODEWARD_TOOLS_NODEWARDCTL_DEV_PKI_H_
