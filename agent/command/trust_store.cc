#include "agent/command/trust_store.h"

#include "absl/strings/str_cat.h"
#include "agent/command/command_types.h"

namespace nodeward {

absl::StatusOr<TrustStorePtr> TrustStore::Build(const nodeward::v1::TrustConfig& config) {
  std::shared_ptr<TrustStore> store(new TrustStore());
  for (int i = 0; i < config.keys_size(); ++i) {
    const auto& k = config.keys(i);
    auto pk = Ed25519PublicKey::FromRaw(k.public_key());
    if (!pk.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("trust.keys[", i, "]: ", pk.status().message()));
    }
    if (!k.key_id().empty() && k.key_id() != pk->key_id()) {
      return absl::InvalidArgumentError(absl::StrCat("trust.keys[", i, "]: key_id ", k.key_id(),
                                                     " does not match the key (", pk->key_id(),
                                                     ")"));
    }
    if (k.roles_size() == 0) {
      return absl::InvalidArgumentError(absl::StrCat("trust.keys[", i, "]: no roles"));
    }
    std::string id = pk->key_id();
    Key key{std::move(pk).value(), {k.roles().begin(), k.roles().end()}};
    if (!store->keys_.emplace(id, std::move(key)).second) {
      return absl::InvalidArgumentError(absl::StrCat("trust.keys[", i, "]: key ", id, " listed twice"));
    }
  }
  for (int i = 0; i < config.policies_size(); ++i) {
    const auto& p = config.policies(i);
    if (!IsKnownPolicyName(p.command_type())) {
      return absl::InvalidArgumentError(absl::StrCat("trust.policies[", i, "]: unknown command type '",
                                                     p.command_type(), "'"));
    }
    Policy policy{{p.allowed_roles().begin(), p.allowed_roles().end()},
                  p.threshold() == 0 ? 1u : p.threshold()};
    size_t able = 0;
    for (const auto& [id, key] : store->keys_) {
      if (store->KeyAllowedFor(key, policy.allowed_roles)) ++able;
    }
    if (able < policy.threshold) {
      return absl::InvalidArgumentError(
          absl::StrCat("trust.policies[", i, "] (", p.command_type(), "): threshold ",
                       policy.threshold, " but only ", able, " configured keys hold an allowed role"));
    }
    if (!store->policies_.emplace(p.command_type(), std::move(policy)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("trust.policies[", i, "]: command type ", p.command_type(), " listed twice"));
    }
  }
  return TrustStorePtr(std::move(store));
}

const TrustStore::Key* TrustStore::FindKey(const std::string& key_id) const {
  auto it = keys_.find(key_id);
  return it == keys_.end() ? nullptr : &it->second;
}

const TrustStore::Policy* TrustStore::FindPolicy(const std::string& command_type) const {
  auto it = policies_.find(command_type);
  return it == policies_.end() ? nullptr : &it->second;
}

bool TrustStore::KeyAllowedFor(const Key& key, const std::set<std::string>& roles) {
  for (const auto& r : key.roles) {
    if (roles.count(r) != 0) return true;
  }
  return false;
}

bool TrustStore::KeyAllowedFor(const Key& key, const std::string& command_type) const {
  const Policy* p = FindPolicy(command_type);
  return p != nullptr && KeyAllowedFor(key, p->allowed_roles);
}

}  // namespace nodeward
