// libFuzzer: the pre-authentication parsers and the post-signature payload
// checks must never crash, hang or leak on any input (threats.md case 14).
// First byte 0: the input is an envelope as it arrives on the wire.
// First byte 1: the input is a payload, signed with a trusted key first, so
// the fuzzer reaches everything after the signature check.
#include <cstddef>
#include <cstdint>

#include "agent/command/command_types.h"
#include "agent/command/verifier.h"
#include "agent/common/crypto.h"

namespace {

struct Fixture {
  nodeward::Ed25519PrivateKey key = nodeward::Ed25519PrivateKey::Generate().value();
  nodeward::TrustStorePtr trust;
  Fixture() {
    nodeward::v1::TrustConfig t;
    auto* k = t.add_keys();
    k->set_public_key(key.PublicRaw());
    k->add_roles("orchestrator");
    auto* p = t.add_policies();
    p->set_command_type("ping");
    p->add_allowed_roles("orchestrator");
    trust = nodeward::TrustStore::Build(t).value();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  if (size == 0) return 0;
  const nodeward::NodeIdentity id{"node-a", "0b7e0d3c-0d5c-4f55-9a49-6c1d0f0b9f10"};
  const nodeward::VerifierLimits limits;
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    (void)nodeward::VerifyCommand(rest, *f->trust, id, limits, now);
    return 0;
  }
  nodeward::v1::SignedCommand env;
  env.set_payload(std::string(rest));
  env.set_payload_type(nodeward::PayloadTypeFor("ping"));
  auto* s = env.add_signatures();
  s->set_key_id(f->key.KeyId());
  s->set_sig(f->key.Sign(nodeward::Pae(env.payload_type(), env.payload())).value());
  (void)nodeward::VerifyCommand(env.SerializeAsString(), *f->trust, id, limits, now);
  return 0;
}
