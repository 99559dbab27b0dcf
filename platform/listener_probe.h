#ifndef NODEWARD_PLATFORM_LISTENER_PROBE_H_
#define NODEWARD_PLATFORM_LISTENER_PROBE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nodeward::platform {

// Checks that the agent's own TLS listener still answers: a TCP connection
// to it and a TLS ClientHello answered by a ServerHello within `timeout`.
// (gRPC 1.51's TCP server stops accepting for good after EMFILE, while the
// process otherwise looks healthy: grpc/grpc#31080.) No client certificate
// is sent; the handshake is then abandoned.
class ListenerProbe {
 public:
  virtual ~ListenerProbe() = default;
  // `address` as the agent listens ("host:port", "[v6]:port"); a wildcard
  // host is probed on loopback. UNAVAILABLE / DEADLINE_EXCEEDED naming what
  // did not happen.
  virtual absl::Status Probe(const std::string& address, absl::Duration timeout) = 0;
  // The same connection, taken as far as the server's certificate: the hex
  // SHA-256 of the DER SubjectPublicKeyInfo of the leaf it presents to a new
  // handshake now (how a hot-reloaded identity is checked).
  virtual absl::StatusOr<std::string> ServedSpki(const std::string& address,
                                                 absl::Duration timeout) = 0;
};

using ListenerProbePtr = std::unique_ptr<ListenerProbe>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LISTENER_PROBE_H_
