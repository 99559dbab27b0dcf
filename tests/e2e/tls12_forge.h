#ifndef NODEWARD_TESTS_E2E_TLS12_FORGE_H_
#define NODEWARD_TESTS_E2E_TLS12_FORGE_H_

#include <string>

#include "absl/status/statusor.h"

namespace nodeward::testing {

// What an unauthenticated TLS 1.2 peer gets from a server: the server signs
// client_random || server_random || ECDHE params in its ServerKeyExchange
// before it has seen any client certificate.
struct Tls12KeyExchange {
  std::string client_random;  // 32 bytes, chosen by the caller
  std::string server_random;  // 32 bytes
  std::string params;         // curve_type, named_curve, point
  uint16_t signature_scheme = 0;
  std::string signature;      // DER ECDSA (or RSA) signature
};

// Sends a hand-made TLS 1.2 ClientHello with `client_random` (ECDHE suites,
// P-256) to 127.0.0.1:`port` and reads the server's flight up to
// ServerHelloDone. No certificate is sent; the connection is then closed.
absl::StatusOr<Tls12KeyExchange> GetServerKeyExchange(int port, const std::string& client_random);

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_E2E_TLS12_FORGE_H_
