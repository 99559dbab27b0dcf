#ifndef NODEWARD_TESTS_COMMON_COMMAND_FACTORY_H_
#define NODEWARD_TESTS_COMMON_COMMAND_FACTORY_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/command/trust_store.h"
#include "agent/command/verifier.h"
#include "agent/common/crypto.h"
#include "nodeward/v1/command.pb.h"
#include "nodeward/v1/config.pb.h"
#include "nodeward/v1/envelope.pb.h"

namespace nodeward::testing {

inline constexpr char kNodeId[] = "node-a";
inline constexpr char kBootId[] = "0b7e0d3c-0d5c-4f55-9a49-6c1d0f0b9f10";

// Fresh Ed25519 keys, a trust config naming them, and signed commands for
// the node identity above. Keys: orchestrator[0..1] (role "orchestrator"),
// admin (roles "orchestrator", "admin"), stranger (not in the trust config).
class CommandFactory {
 public:
  CommandFactory();

  // ping: roles orchestrator, threshold `ping_threshold`.
  nodeward::v1::TrustConfig Trust(uint32_t ping_threshold = 1) const;
  TrustStorePtr TrustStoreFor(uint32_t ping_threshold = 1) const;
  NodeIdentity Identity() const { return {kNodeId, kBootId}; }

  // A ping for this node issued at `now`, valid 5 minutes.
  nodeward::v1::Command Ping(uint64_t sequence, absl::Time now) const;
  // Serialized envelope signed by `keys` (default: orchestrator 0).
  std::string Sign(const nodeward::v1::Command& command,
                   std::vector<const Ed25519PrivateKey*> keys = {},
                   const std::string& payload_type = "") const;
  nodeward::v1::SignedCommand Envelope(const nodeward::v1::Command& command,
                                       std::vector<const Ed25519PrivateKey*> keys = {},
                                       const std::string& payload_type = "") const;

  const Ed25519PrivateKey& orchestrator(int i) const { return orchestrators_[i]; }
  const Ed25519PrivateKey& admin() const { return admin_; }
  const Ed25519PrivateKey& stranger() const { return stranger_; }

 private:
  std::vector<Ed25519PrivateKey> orchestrators_;
  Ed25519PrivateKey admin_;
  Ed25519PrivateKey stranger_;
};

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_COMMON_COMMAND_FACTORY_H_
