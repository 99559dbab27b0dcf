#ifndef NODEWARD_AGENT_COMMAND_TRUST_STORE_H_
#define NODEWARD_AGENT_COMMAND_TRUST_STORE_H_

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "agent/common/crypto.h"
#include "nodeward/v1/config.pb.h"

namespace nodeward {

// The orchestrator keys the agent trusts and which command types each may
// sign. Immutable once built; shared by reference so a SIGHUP reload swaps
// the whole store at once (a command is judged by one store, never a mix).
class TrustStore {
 public:
  struct Key {
    Ed25519PublicKey public_key;
    std::set<std::string> roles;
  };
  struct Policy {
    std::set<std::string> allowed_roles;
    uint32_t threshold = 1;
  };

  // INVALID_ARGUMENT naming the offending entry for: a bad key, a key_id that
  // does not match its key, a key listed twice, a policy for an unknown command
  // type or listed twice, or a threshold that the configured keys cannot meet.
  static absl::StatusOr<std::shared_ptr<const TrustStore>> Build(
      const nodeward::v1::TrustConfig& config);

  // nullptr if unknown.
  const Key* FindKey(const std::string& key_id) const;
  const Policy* FindPolicy(const std::string& command_type) const;
  bool KeyAllowedFor(const Key& key, const std::string& command_type) const;
  static bool KeyAllowedFor(const Key& key, const std::set<std::string>& roles);
  size_t key_count() const { return keys_.size(); }

 private:
  TrustStore() = default;
  std::map<std::string, Key> keys_;
  std::map<std::string, Policy> policies_;
};

using TrustStorePtr = std::shared_ptr<const TrustStore>;

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMAND_TRUST_STORE_H_
