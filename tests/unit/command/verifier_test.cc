// Each verification step on its own, then the whole chain, with the exact
// status code and reason (threats.md cases 1-3, 6-8, 10-16).
#include "agent/command/verifier.h"

#include "absl/strings/str_cat.h"
#include "agent/common/reason.h"
#include "agent/command/command_types.h"
#include "agent/common/crypto.h"
#include "gtest/gtest.h"
#include "tests/common/command_factory.h"
#include "tests/common/status_matchers.h"

namespace nodeward {
namespace {

using absl::StatusCode;
using testing::CommandFactory;
using testing::IsOk;
using testing::Rejected;

class VerifierTest : public ::testing::Test {
 protected:
  absl::StatusOr<VerifiedCommand> Verify(const std::string& bytes, uint32_t threshold = 1) {
    return VerifyCommand(bytes, *f_.TrustStoreFor(threshold), f_.Identity(), limits_, now_);
  }
  CommandFactory f_;
  VerifierLimits limits_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(VerifierTest, AcceptsValidPing) {
  auto v = Verify(f_.Sign(f_.Ping(1, now_)));
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->command_type, "ping");
  EXPECT_EQ(v->command.sequence(), 1u);
  EXPECT_EQ(v->signer_key_ids, std::vector<std::string>{f_.orchestrator(0).KeyId()});
}

// Case 1.
TEST_F(VerifierTest, FlippedPayloadByteIsSigInvalid) {
  auto env = f_.Envelope(f_.Ping(1, now_));
  std::string p = env.payload();
  p[p.size() / 2] ^= 0x01;
  env.set_payload(p);
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kUnauthenticated, reason::kSigInvalid));
}

TEST_F(VerifierTest, FlippedSignatureByteIsSigInvalid) {
  auto env = f_.Envelope(f_.Ping(1, now_));
  std::string s = env.signatures(0).sig();
  s[3] ^= 0x80;
  env.mutable_signatures(0)->set_sig(s);
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kUnauthenticated, reason::kSigInvalid));
}

// Case 2: re-encoding (field order changed, a duplicate field appended)
// changes the bytes, so the old signature no longer verifies.
TEST_F(VerifierTest, ReencodedPayloadUnderOldSignatureIsRejected) {
  auto cmd = f_.Ping(1, now_);
  auto env = f_.Envelope(cmd);
  // Append a duplicate node_id field (tag 1, length-delimited): parsers merge it.
  std::string dup = env.payload() + std::string("\x0a\x06node-a", 8);
  auto env2 = env;
  env2.set_payload(dup);
  EXPECT_THAT(Verify(env2.SerializeAsString()),
              Rejected(StatusCode::kUnauthenticated, reason::kSigInvalid));
  // Reordered: the ping body first, then the header fields.
  nodeward::v1::Command body_only;
  *body_only.mutable_ping() = cmd.ping();
  nodeward::v1::Command header = cmd;
  header.clear_ping();
  auto env3 = env;
  env3.set_payload(body_only.SerializeAsString() + header.SerializeAsString());
  ASSERT_NE(env3.payload(), env.payload());
  EXPECT_THAT(Verify(env3.SerializeAsString()),
              Rejected(StatusCode::kUnauthenticated, reason::kSigInvalid));
}

// Case 6.
TEST_F(VerifierTest, OtherNodeOrOldBootIsWrongTarget) {
  auto cmd = f_.Ping(1, now_);
  cmd.set_node_id("node-b");
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kFailedPrecondition, reason::kWrongTarget));
  cmd = f_.Ping(1, now_);
  cmd.set_boot_id("11111111-2222-4333-8444-555555555555");
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kFailedPrecondition, reason::kWrongTarget));
}

// Case 7.
TEST_F(VerifierTest, ExpiryBeyondSkewIsRejectedWithinSkewAccepted) {
  auto cmd = f_.Ping(1, now_ - absl::Minutes(10));  // expired 5 minutes ago
  cmd.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(now_ - absl::Minutes(6)));
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kFailedPrecondition, reason::kExpired));
  cmd.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(now_ - absl::Minutes(4)));
  EXPECT_THAT(Verify(f_.Sign(cmd)), IsOk());
}

// Case 8.
TEST_F(VerifierTest, IssuedTooFarAheadIsNotYetValid) {
  auto cmd = f_.Ping(1, now_ + absl::Minutes(6));
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kFailedPrecondition, reason::kNotYetValid));
  cmd = f_.Ping(1, now_ + absl::Minutes(4));
  EXPECT_THAT(Verify(f_.Sign(cmd)), IsOk());
}

TEST_F(VerifierTest, OverlongLifetimeIsRejected) {
  auto cmd = f_.Ping(1, now_);
  cmd.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(now_ + absl::Hours(2)));
  EXPECT_THAT(Verify(f_.Sign(cmd)),
              Rejected(StatusCode::kInvalidArgument, reason::kLifetimeTooLong));
}

// Case 11.
TEST_F(VerifierTest, SameKeyTwiceDoesNotMeetThresholdTwo) {
  const auto* k = &f_.orchestrator(0);
  EXPECT_THAT(Verify(f_.Sign(f_.Ping(1, now_), {k, k}), 2),
              Rejected(StatusCode::kPermissionDenied, reason::kDuplicateSigner));
  EXPECT_THAT(Verify(f_.Sign(f_.Ping(1, now_), {k}), 2),
              Rejected(StatusCode::kPermissionDenied, reason::kThresholdNotMet));
  EXPECT_THAT(Verify(f_.Sign(f_.Ping(1, now_), {k, &f_.orchestrator(1)}), 2), IsOk());
}

// Case 12.
TEST_F(VerifierTest, UnknownKeyIsRejected) {
  EXPECT_THAT(Verify(f_.Sign(f_.Ping(1, now_), {&f_.stranger()})),
              Rejected(StatusCode::kUnauthenticated, reason::kKeyUnknown));
}

TEST_F(VerifierTest, RevokedKeyIsUnknownAfterTrustChange) {
  auto trust = f_.Trust();
  trust.mutable_keys()->DeleteSubrange(0, 1);  // orchestrator 0 revoked
  auto store = TrustStore::Build(trust).value();
  EXPECT_THAT(VerifyCommand(f_.Sign(f_.Ping(1, now_)), *store, f_.Identity(), limits_, now_),
              Rejected(StatusCode::kUnauthenticated, reason::kKeyUnknown));
}

TEST_F(VerifierTest, KeyWithoutAllowedRoleIsNotAllowed) {
  auto trust = f_.Trust();
  trust.mutable_policies(0)->clear_allowed_roles();
  trust.mutable_policies(0)->add_allowed_roles("admin");
  auto store = TrustStore::Build(trust).value();
  EXPECT_THAT(VerifyCommand(f_.Sign(f_.Ping(1, now_)), *store, f_.Identity(), limits_, now_),
              Rejected(StatusCode::kPermissionDenied, reason::kKeyNotAllowed));
  EXPECT_THAT(VerifyCommand(f_.Sign(f_.Ping(1, now_), {&f_.admin()}), *store, f_.Identity(),
                            limits_, now_),
              IsOk());
}

TEST_F(VerifierTest, CommandTypeWithoutPolicyIsNotAllowed) {
  auto trust = f_.Trust();
  trust.clear_policies();
  auto store = TrustStore::Build(trust).value();
  EXPECT_THAT(VerifyCommand(f_.Sign(f_.Ping(1, now_)), *store, f_.Identity(), limits_, now_),
              Rejected(StatusCode::kPermissionDenied, reason::kKeyNotAllowed));
}

// Case 13 / 10: the type is inside the signed pre-image.
TEST_F(VerifierTest, PayloadTypeOfAnotherKindIsRefusedBeforeAnyKeyCheck) {
  auto env = f_.Envelope(f_.Ping(1, now_));
  env.set_payload_type("application/vnd.nodeward.v1.command.status+protobuf");
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kInvalidArgument, reason::kPayloadTypeUnknown));
}

TEST_F(VerifierTest, BodyNotMatchingPayloadTypeIsMismatch) {
  auto cmd = f_.Ping(1, now_);
  cmd.clear_ping();
  EXPECT_THAT(Verify(f_.Sign(cmd, {}, PayloadTypeFor("ping"))),
              Rejected(StatusCode::kInvalidArgument, reason::kPayloadTypeMismatch));
}

// Case 14.
TEST_F(VerifierTest, UnknownFieldInPayloadIsRejected) {
  auto env = f_.Envelope(f_.Ping(1, now_));
  // Field 99, varint 1: unknown to this agent.
  std::string payload = env.payload() + std::string("\x98\x06\x01", 3);
  nodeward::v1::Command cmd;
  ASSERT_TRUE(cmd.ParseFromString(payload));
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kInvalidArgument,
                                             reason::kPayloadUnknownField));
  // The raw bytes, re-signed as they are.
  auto env2 = f_.Envelope(f_.Ping(1, now_));
  env2.set_payload(payload);
  std::string pae = Pae(env2.payload_type(), env2.payload());
  env2.mutable_signatures(0)->set_sig(f_.orchestrator(0).Sign(pae).value());
  EXPECT_THAT(Verify(env2.SerializeAsString()),
              Rejected(StatusCode::kInvalidArgument, reason::kPayloadUnknownField));
}

TEST_F(VerifierTest, UnknownFieldInNestedBodyIsRejected) {
  auto cmd = f_.Ping(1, now_);
  cmd.mutable_ping()->GetReflection()->MutableUnknownFields(cmd.mutable_ping())->AddVarint(7, 1);
  EXPECT_THAT(Verify(f_.Sign(cmd)),
              Rejected(StatusCode::kInvalidArgument, reason::kPayloadUnknownField));
}

TEST_F(VerifierTest, UnknownFieldInEnvelopeIsRejected) {
  auto env = f_.Envelope(f_.Ping(1, now_));
  std::string bytes = env.SerializeAsString() + std::string("\x98\x06\x01", 3);
  EXPECT_THAT(Verify(bytes), Rejected(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed));
}

// Case 15.
TEST_F(VerifierTest, SizeCapEmptyAndSignatureFlood) {
  EXPECT_THAT(Verify(""), Rejected(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed));
  auto cmd = f_.Ping(1, now_);
  cmd.mutable_ping()->set_note(std::string(70000, 'x'));
  EXPECT_THAT(Verify(f_.Sign(cmd)),
              Rejected(StatusCode::kResourceExhausted, reason::kEnvelopeTooLarge));
  limits_.max_envelope_bytes = 4 << 20;
  auto env = f_.Envelope(f_.Ping(1, now_));
  for (int i = 0; i < 10000; ++i) *env.add_signatures() = env.signatures(0);
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kInvalidArgument, reason::kTooManySignatures));
}

// Issue "Hardening I" point 2: with a 64 MiB cap, an envelope of millions of
// empty signatures is refused from the wire bytes before any parse (on
// fcf3c42 the whole envelope was parsed and walked first: +2 GiB, 10.8 s),
// and every type but apply_firewall keeps the small cap.
TEST_F(VerifierTest, CheapChecksComeBeforeTheParse) {
  limits_.max_envelope_bytes = 64 << 20;
  std::string flood = std::string("\x12") + static_cast<char>(PayloadTypeFor("ping").size()) +
                      PayloadTypeFor("ping");
  while (flood.size() + 2 <= (64u << 20)) flood += std::string("\x1a\x00", 2);
  EXPECT_THAT(Verify(flood), Rejected(StatusCode::kInvalidArgument, reason::kTooManySignatures));
  // A 70 kB ping under the 64 MiB cap: still too large for its type.
  auto cmd = f_.Ping(1, now_);
  cmd.mutable_ping()->set_note(std::string(70000, 'x'));
  auto too_big = Verify(f_.Sign(cmd));
  EXPECT_THAT(too_big, Rejected(StatusCode::kResourceExhausted, reason::kEnvelopeTooLarge));
  EXPECT_NE(too_big.status().message().find("for 'ping' commands"), std::string::npos);
  // The same size as an apply_firewall passes the size check (and fails
  // later: no policy for that type here).
  auto fw = Verify(f_.Sign(cmd, {}, PayloadTypeFor("apply_firewall")));
  EXPECT_THAT(fw, Rejected(StatusCode::kPermissionDenied, reason::kKeyNotAllowed));
  // Strings that are not printable ASCII never reach libprotobuf's UTF-8
  // check (which logs an ERROR line per string).
  auto env = f_.Envelope(f_.Ping(1, now_));
  env.set_payload_type(std::string("\xff\xfe", 2));
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed));
  env = f_.Envelope(f_.Ping(1, now_));
  env.mutable_signatures(0)->set_key_id(std::string("\xc3\x28", 2));
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed));
  // An oversized signature entry.
  env = f_.Envelope(f_.Ping(1, now_));
  env.mutable_signatures(0)->set_sig(std::string(65, 's'));
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed));
}

// Point 9: the nil UUID is no command id; an empty payload is malformed,
// not a type mismatch.
TEST_F(VerifierTest, NilUuidAndEmptyPayloadAreMalformed) {
  auto cmd = f_.Ping(1, now_);
  cmd.set_command_id("00000000-0000-0000-0000-000000000000");
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kInvalidArgument, reason::kPayloadMalformed));
  auto env = f_.Envelope(f_.Ping(1, now_));
  env.clear_payload();
  const std::string pae = Pae(env.payload_type(), "");
  env.mutable_signatures(0)->set_sig(f_.orchestrator(0).Sign(pae).value());
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kInvalidArgument, reason::kPayloadMalformed));
}

// Issue "Hardening II" point 5: formatting over data is its own authority.
// The online key alone may set up blank volumes, but a SetupVolume with
// destroy_existing_data needs the variant's policy (threshold 2 here); with
// no such policy it is refused. On fcf3c42 one key could reformat any disk.
TEST_F(VerifierTest, DestroyingDataNeedsItsOwnPolicy) {
  auto setup = [&](bool destroy) {
    auto c = f_.Ping(1, now_);
    c.clear_ping();
    auto* s = c.mutable_setup_volume();
    s->set_volume_id("pg-data");
    s->set_device("serial:d1");
    s->set_mapper_name("pgdata");
    s->set_filesystem(nodeward::v1::FILESYSTEM_EXT4);
    s->set_mount_point("/srv/pg");
    s->set_destroy_existing_data(destroy);
    return c;
  };
  nodeward::v1::TrustConfig t = f_.Trust();
  auto* p = t.add_policies();
  p->set_command_type("setup_volume");
  p->add_allowed_roles("orchestrator");
  TrustStorePtr without = TrustStore::Build(t).value();
  p = t.add_policies();
  p->set_command_type(std::string(kDestroyingSetupVolume));
  p->add_allowed_roles("orchestrator");
  p->set_threshold(2);
  TrustStorePtr with = TrustStore::Build(t).value();
  auto verify = [&](const TrustStorePtr& trust, const std::string& bytes) {
    return VerifyCommand(bytes, *trust, f_.Identity(), limits_, now_);
  };
  const Ed25519PrivateKey* k0 = &f_.orchestrator(0);
  const Ed25519PrivateKey* k1 = &f_.orchestrator(1);
  EXPECT_THAT(verify(with, f_.Sign(setup(false), {k0})), IsOk());
  EXPECT_THAT(verify(with, f_.Sign(setup(true), {k0})),
              Rejected(StatusCode::kPermissionDenied, reason::kThresholdNotMet));
  EXPECT_THAT(verify(with, f_.Sign(setup(true), {k0, k1})), IsOk());
  EXPECT_THAT(verify(without, f_.Sign(setup(true), {k0, k1})),
              Rejected(StatusCode::kPermissionDenied, reason::kKeyNotAllowed));
  EXPECT_THAT(verify(without, f_.Sign(setup(false), {k0})), IsOk());
}

TEST_F(VerifierTest, GarbageAndUnsignedEnvelopes) {
  EXPECT_THAT(Verify(std::string("\xff\xff\xff\xff", 4)),
              Rejected(StatusCode::kInvalidArgument, reason::kEnvelopeMalformed));
  auto env = f_.Envelope(f_.Ping(1, now_));
  env.clear_signatures();
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kUnauthenticated, reason::kEnvelopeMalformed));
}

// Case 16 (the rule, with ping standing in for a destructive type).
TEST_F(VerifierTest, OnlineKeyAloneCannotMeetDestructiveThreshold) {
  EXPECT_THAT(Verify(f_.Sign(f_.Ping(1, now_)), 2),
              Rejected(StatusCode::kPermissionDenied, reason::kThresholdNotMet));
}

TEST_F(VerifierTest, MissingHeaderFieldsAreMalformed) {
  auto cmd = f_.Ping(1, now_);
  cmd.set_command_id("not-a-uuid");
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kInvalidArgument, reason::kPayloadMalformed));
  cmd = f_.Ping(1, now_);
  cmd.set_sequence(0);
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kInvalidArgument, reason::kPayloadMalformed));
  cmd = f_.Ping(1, now_);
  cmd.clear_expires_at();
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kInvalidArgument, reason::kPayloadMalformed));
  cmd = f_.Ping(1, now_);
  cmd.clear_node_id();
  EXPECT_THAT(Verify(f_.Sign(cmd)), Rejected(StatusCode::kInvalidArgument, reason::kPayloadMalformed));
}

// Order: a bad signature is reported before anything about the payload.
TEST_F(VerifierTest, SignatureIsCheckedBeforePayloadIsTrusted) {
  auto cmd = f_.Ping(1, now_);
  cmd.set_node_id("node-b");
  auto env = f_.Envelope(cmd);
  std::string s = env.signatures(0).sig();
  s[0] ^= 1;
  env.mutable_signatures(0)->set_sig(s);
  EXPECT_THAT(Verify(env.SerializeAsString()),
              Rejected(StatusCode::kUnauthenticated, reason::kSigInvalid));
}

TEST(PaeTest, MatchesDsseSpecExample) {
  // DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world").
  EXPECT_EQ(Pae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
}

TEST(CommandTypesTest, PayloadTypeRoundTrip) {
  EXPECT_EQ(CommandTypeFromPayloadType(PayloadTypeFor("ping")).value(), "ping");
  EXPECT_EQ(CommandTypeFromPayloadType(PayloadTypeFor("wipe")).value(), "wipe");
  EXPECT_FALSE(CommandTypeFromPayloadType("application/vnd.nodeward.v1.command.reboot+protobuf").ok());
  EXPECT_FALSE(CommandTypeFromPayloadType("").ok());
}

}  // namespace
}  // namespace nodeward
