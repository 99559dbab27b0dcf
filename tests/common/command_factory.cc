#include "tests/common/command_factory.h"

#include "absl/strings/str_format.h"
#include "agent/command/command_types.h"
#include "google/protobuf/util/time_util.h"

namespace nodeward::testing {
namespace {

Ed25519PrivateKey NewKey() { return Ed25519PrivateKey::Generate().value(); }

std::string UuidFor(uint64_t n) {
  return absl::StrFormat("00000000-0000-4000-8000-%012x", n);
}

}  // namespace

CommandFactory::CommandFactory()
    : orchestrators_{NewKey(), NewKey()}, admin_(NewKey()), stranger_(NewKey()) {}

nodeward::v1::TrustConfig CommandFactory::Trust(uint32_t ping_threshold) const {
  nodeward::v1::TrustConfig t;
  for (const auto& k : orchestrators_) {
    auto* e = t.add_keys();
    e->set_public_key(k.PublicRaw());
    e->add_roles("orchestrator");
  }
  auto* a = t.add_keys();
  a->set_public_key(admin_.PublicRaw());
  a->add_roles("orchestrator");
  a->add_roles("admin");
  auto* p = t.add_policies();
  p->set_command_type("ping");
  p->add_allowed_roles("orchestrator");
  p->set_threshold(ping_threshold);
  return t;
}

TrustStorePtr CommandFactory::TrustStoreFor(uint32_t ping_threshold) const {
  return TrustStore::Build(Trust(ping_threshold)).value();
}

nodeward::v1::Command CommandFactory::Ping(uint64_t sequence, absl::Time now) const {
  using google::protobuf::util::TimeUtil;
  nodeward::v1::Command c;
  c.set_node_id(kNodeId);
  c.set_boot_id(kBootId);
  c.set_command_id(UuidFor(sequence));
  c.set_sequence(sequence);
  *c.mutable_issued_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(now));
  *c.mutable_expires_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(now) + 300);
  c.mutable_ping()->set_note("hello");
  return c;
}

nodeward::v1::SignedCommand CommandFactory::Envelope(const nodeward::v1::Command& command,
                                                     std::vector<const Ed25519PrivateKey*> keys,
                                                     const std::string& payload_type) const {
  if (keys.empty()) keys.push_back(&orchestrators_[0]);
  nodeward::v1::SignedCommand env;
  env.set_payload(command.SerializeAsString());
  env.set_payload_type(payload_type.empty() ? PayloadTypeFor(CommandTypeOf(command))
                                            : payload_type);
  std::string pae = Pae(env.payload_type(), env.payload());
  for (const auto* k : keys) {
    auto* s = env.add_signatures();
    s->set_key_id(k->KeyId());
    s->set_sig(k->Sign(pae).value());
  }
  return env;
}

std::string CommandFactory::Sign(const nodeward::v1::Command& command,
                                 std::vector<const Ed25519PrivateKey*> keys,
                                 const std::string& payload_type) const {
  return Envelope(command, std::move(keys), payload_type).SerializeAsString();
}

}  // namespace nodeward::testing
