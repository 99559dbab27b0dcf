#ifndef NODEWARD_TOOLS_NODEWARDCTL_CLIENT_H_
#define NODEWARD_TOOLS_NODEWARDCTL_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/crypto.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/command.pb.h"
#include "nodeward/v1/envelope.pb.h"

namespace nodeward {

// The reference orchestrator side: what any orchestrator must do to talk to
// the agent (docs/protocol.md), used by nodewardctl, the tests and the bench.

// A whole (small) file; NOT_FOUND naming it if it cannot be opened. Not for
// private keys (those go through SecureBuffer).
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

// Random RFC 4122 version-4 UUID, lower case.
std::string NewCommandId();

// Fills command_id, issued_at (now) and expires_at (now + lifetime) where
// they are unset.
void FillCommandDefaults(nodeward::v1::Command* command, absl::Time now, absl::Duration lifetime);

// Serializes `command` once and signs those bytes with each key over
// PAE(payload_type, payload). An empty payload_type is derived from the body.
absl::StatusOr<nodeward::v1::SignedCommand> SignCommand(
    const nodeward::v1::Command& command, const std::vector<const Ed25519PrivateKey*>& keys,
    std::string payload_type = "");

struct ClientTls {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Name to check in the server certificate; default: the target host.
  std::string server_name;
  // Hex SHA-256 of the agent's SPKI (health: certificates[].spki_sha256):
  // the server is accepted when its leaf has this key, whatever its chain,
  // name or validity window say. The recovery path for an expired agent
  // identity (docs/certificates.md); the client certificate is still sent.
  std::string pin_spki{};
  // Channels with different non-zero tags never share a connection (tests
  // that need many connections).
  int connection_tag = 0;
};

// Credentials that accept the server by its SPKI pin alone (ClientTls.pin_spki).
std::shared_ptr<grpc::ChannelCredentials> PinnedCredentials(const grpc::SslCredentialsOptions& o,
                                                            const std::string& pin);

// An mTLS channel to the agent. Errors name an unreadable file.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeAgentChannel(const std::string& target,
                                                                const ClientTls& tls);

struct ExecuteOutcome {
  absl::Status status;    // gRPC status mapped 1:1
  std::string reason;     // "nodeward-reason" trailer, if any
  // An applied command's result; for a refusal, the "nodeward-result-bin"
  // trailer (reason, code, message, sequence_consumed).
  nodeward::v1::CommandResult result;
};

ExecuteOutcome ExecuteCommand(grpc::Channel* channel, const nodeward::v1::SignedCommand& envelope,
                              absl::Duration timeout = absl::Seconds(10));

}  // namespace nodeward

#endif  // NODEWARD_TOOLS_NODEWARDCTL_CLIENT_H_
