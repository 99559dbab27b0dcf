// The real agent binary over real mTLS on loopback (port 0).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/backup/backup_keys.h"
#include "agent/common/reason.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "nodeward/v1/agent.grpc.pb.h"
#include "tests/common/status_matchers.h"
#include "tests/e2e/agent_process.h"

namespace nodeward::testing {
namespace {

using absl::StatusCode;
using nodeward::v1::HealthReport;

class AgentE2eTest : public ::testing::Test {
 protected:
  void StartAgent() { ASSERT_THAT(agent_.Start(), IsOk()); }
  ExecuteOutcome Send(const nodeward::v1::SignedCommand& env, const std::string& client = "client") {
    auto ch = agent_.Channel(client);
    EXPECT_THAT(ch, IsOk());
    return ExecuteCommand(ch->get(), env, absl::Seconds(5));
  }
  AgentProcess agent_;
};

TEST_F(AgentE2eTest, SignedPingSucceedsAndSigtermExitsZero) {
  StartAgent();
  auto out = Send(agent_.Ping(1));
  ASSERT_THAT(out.status, IsOk()) << agent_.Log();
  EXPECT_EQ(out.result.sequence(), 1u);
  EXPECT_EQ(out.result.ping().note(), "e2e");
  EXPECT_FALSE(out.result.replayed());
  auto st = agent_.Status();
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(HealthReport::State_Name(st->health().state()), "SERVING");
  EXPECT_EQ(st->health().commands().high_water_mark(), 1u);
  EXPECT_EQ(st->listen_address(), agent_.target());
  EXPECT_EQ(agent_.Stop(SIGTERM), 0);
}

// OpenSSL's secure heap is on in the daemon: the TLS key gRPC loaded and the
// handshakes' secrets sit in 2 MiB of locked memory (VmLck), and no warning
// says otherwise.
TEST_F(AgentE2eTest, OpenSslKeysLiveInLockedMemory) {
  StartAgent();
  ASSERT_THAT(Send(agent_.Ping(1)).status, IsOk()) << agent_.Log();
  std::ifstream status("/proc/" + std::to_string(agent_.pid()) + "/status");
  std::string line;
  long locked_kb = -1;
  while (std::getline(status, line)) {
    if (line.rfind("VmLck:", 0) == 0) locked_kb = std::stol(line.substr(6));
  }
  EXPECT_GE(locked_kb, 2048) << "VmLck of the agent";
  EXPECT_EQ(agent_.Log().find("private keys inside OpenSSL"), std::string::npos) << agent_.Log();
  EXPECT_EQ(agent_.Stop(SIGTERM), 0);
}

TEST_F(AgentE2eTest, RejectionsCarryReasonTrailer) {
  StartAgent();
  ASSERT_THAT(Send(agent_.Ping(1)).status, IsOk());
  auto replay_other_id = Send(agent_.Ping(1));
  EXPECT_EQ(replay_other_id.status.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(replay_other_id.reason, reason::kSequenceReplayed);
  auto env = agent_.Ping(2);
  std::string p = env.payload();
  p[p.size() - 1] ^= 1;
  env.set_payload(p);
  auto tampered = Send(env);
  EXPECT_EQ(tampered.status.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(tampered.reason, reason::kSigInvalid);
  auto stranger = Ed25519PrivateKey::Generate().value();
  auto unknown = Send(agent_.Ping(2, &stranger));
  EXPECT_EQ(unknown.reason, reason::kKeyUnknown);
}

TEST_F(AgentE2eTest, HandshakeFailsWithoutAValidClientCertificate) {
  StartAgent();
  // server-eku-client: extendedKeyUsage serverAuth only (docs/transport.md:
  // a client certificate needs clientAuth or no EKU at all).
  for (const char* client :
       {"other-ca-client", "expired-client", "not-yet-valid-client", "server-eku-client"}) {
    auto out = Send(agent_.Ping(1), client);
    EXPECT_EQ(out.status.code(), StatusCode::kUnavailable) << client << ": " << out.status;
  }
  // No client certificate at all.
  auto tls = agent_.Tls();
  tls.cert_file.clear();
  auto ch = MakeAgentChannel(agent_.target(), tls);
  ASSERT_THAT(ch, IsOk());
  EXPECT_EQ(ExecuteCommand(ch->get(), agent_.Ping(1), absl::Seconds(5)).status.code(),
            StatusCode::kUnavailable);
  // Plaintext.
  auto plain = grpc::CreateChannel(agent_.target(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(ExecuteCommand(plain.get(), agent_.Ping(1), absl::Seconds(5)).status.code(),
            StatusCode::kUnavailable);
  // None of them reached the pipeline.
  auto st = agent_.Status();
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->health().commands().applied() + st->health().commands().rejected(), 0u);
  EXPECT_THAT(Send(agent_.Ping(1)).status, IsOk());
}

TEST_F(AgentE2eTest, RevokedClientCertificateFailsWhenCrlsAreConfigured) {
  agent_.config().mutable_tls()->set_crl_directory(agent_.dir() + "/pki/crl");
  StartAgent();
  auto revoked = Send(agent_.Ping(1), "revoked-client");
  EXPECT_EQ(revoked.status.code(), StatusCode::kUnavailable) << revoked.status;
  EXPECT_THAT(Send(agent_.Ping(1)).status, IsOk());
}

TEST_F(AgentE2eTest, ClientSanPinningRefusesOtherIdentities) {
  agent_.config().mutable_tls()->add_allowed_client_sans("spiffe://nodeward.dev/orchestrator");
  StartAgent();
  auto out = Send(agent_.Ping(1), "wrong-san-client");
  EXPECT_EQ(out.status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(out.reason, reason::kPeerNotAllowed);
  EXPECT_THAT(Send(agent_.Ping(1)).status, IsOk());
}

// Raw OpenSSL client: what TLS versions and suites the server accepts.
struct TlsProbe {
  bool handshake_ok = false;
  bool got_http2_bytes = false;
  std::string version;
};

TlsProbe ProbeTls(const AgentProcess& agent, int max_version, const char* tls12_ciphers) {
  TlsProbe r;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(ctx, 0);  // let the client offer what old clients offer
  SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  if (tls12_ciphers != nullptr) SSL_CTX_set_cipher_list(ctx, tls12_ciphers);
  SSL_CTX_load_verify_locations(ctx, (agent.dir() + "/pki/ca.pem").c_str(), nullptr);
  SSL_CTX_use_certificate_file(ctx, (agent.dir() + "/pki/client.pem").c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_use_PrivateKey_file(ctx, (agent.dir() + "/pki/client.key").c_str(), SSL_FILETYPE_PEM);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  std::string t = agent.target();
  int port = 0;
  (void)absl::SimpleAtoi(t.substr(t.rfind(':') + 1), &port);
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) == 1) {
      r.handshake_ok = true;
      r.version = SSL_get_version(ssl);
      static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
      static const unsigned char kSettings[] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
      SSL_write(ssl, kPreface, sizeof(kPreface) - 1);
      SSL_write(ssl, kSettings, sizeof(kSettings));
      char buf[64];
      r.got_http2_bytes = SSL_read(ssl, buf, sizeof(buf)) > 0;
    }
    SSL_free(ssl);
  }
  close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return r;
}

TEST_F(AgentE2eTest, TlsVersionsAndSuitesAreEnforced) {
  StartAgent();
  TlsProbe tls13 = ProbeTls(agent_, TLS1_3_VERSION, nullptr);
  EXPECT_TRUE(tls13.handshake_ok);
  EXPECT_TRUE(tls13.got_http2_bytes);
  EXPECT_EQ(tls13.version, "TLSv1.3");
  TlsProbe tls12_aead = ProbeTls(agent_, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256");
  EXPECT_TRUE(tls12_aead.got_http2_bytes);
  EXPECT_EQ(tls12_aead.version, "TLSv1.2");
  TlsProbe tls12_cbc = ProbeTls(
      agent_, TLS1_2_VERSION,
      "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:AES128-SHA");
  EXPECT_FALSE(tls12_cbc.handshake_ok);
  TlsProbe tls12_no_ecdhe = ProbeTls(agent_, TLS1_2_VERSION, "AES128-GCM-SHA256:AES256-GCM-SHA384");
  EXPECT_FALSE(tls12_no_ecdhe.handshake_ok);
  TlsProbe tls11 = ProbeTls(agent_, TLS1_1_VERSION, "ALL:@SECLEVEL=0");
  EXPECT_FALSE(tls11.handshake_ok);
}

// Case 4: the replay after a restart returns the recorded outcome.
TEST_F(AgentE2eTest, ExactReplayAfterRestartAppliesNothing) {
  StartAgent();
  auto env = agent_.Ping(1);
  auto first = Send(env);
  ASSERT_THAT(first.status, IsOk());
  EXPECT_EQ(agent_.Stop(SIGTERM), 0);
  StartAgent();
  auto again = Send(env);
  ASSERT_THAT(again.status, IsOk()) << agent_.Log();
  EXPECT_TRUE(again.result.replayed());
  EXPECT_EQ(again.result.applied_at().nanos(), first.result.applied_at().nanos());
  auto st = agent_.Status();
  ASSERT_THAT(st, IsOk());
  // Counters continue from the audit file: the first apply is still counted.
  EXPECT_EQ(st->health().commands().applied(), 1u);
  EXPECT_EQ(st->health().commands().replayed(), 1u);
  EXPECT_EQ(st->health().commands().high_water_mark(), 1u);
  ASSERT_EQ(st->recent_commands_size(), 2);
  EXPECT_EQ(st->recent_commands(0).decision(), "replayed");
  EXPECT_EQ(st->recent_commands(1).decision(), "applied");
}

// Case 48: journal writes fail (a file-size limit stands in for a full disk,
// since root ignores permissions): refused before apply, agent stays up,
// health says why.
TEST_F(AgentE2eTest, JournalWriteFailureRefusesBeforeApply) {
  StartAgent();
  ASSERT_THAT(Send(agent_.Ping(1)).status, IsOk());
  ASSERT_EQ(agent_.Stop(SIGTERM), 0);
  ASSERT_THAT(agent_.Start(/*file_size_limit=*/1), IsOk());
  auto out = Send(agent_.Ping(2));
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.reason, reason::kStateUnavailable);
  auto st = agent_.Status();
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(HealthReport::State_Name(st->health().state()), "NOT_ACCEPTING");
  EXPECT_EQ(st->health().commands().high_water_mark(), 1u);
  EXPECT_EQ(st->health().commands().applied(), 1u);  // the Ping before the restart
  ASSERT_GT(st->health().conditions_size(), 0);
  EXPECT_EQ(st->health().conditions(0).type(), nodeward::v1::Condition::STATE_UNAVAILABLE);
  EXPECT_FALSE(st->health().accepting_commands());
  // Still serving reads and refusing commands; a restart with room recovers.
  EXPECT_EQ(Send(agent_.Ping(3)).reason, reason::kStateUnavailable);
  ASSERT_EQ(agent_.Stop(SIGTERM), 0);
  StartAgent();
  auto st2 = agent_.Status();
  ASSERT_THAT(st2, IsOk());
  EXPECT_EQ(st2->health().commands().high_water_mark(), 1u);
  EXPECT_THAT(Send(agent_.Ping(2)).status, IsOk());
}

TEST_F(AgentE2eTest, UnwritableStateDirAtStartupRefusesCommands) {
  ASSERT_THAT(agent_.Start(/*file_size_limit=*/1), IsOk());
  auto out = Send(agent_.Ping(1));
  EXPECT_EQ(out.reason, reason::kStateUnavailable);
  auto st = agent_.Status();
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(HealthReport::State_Name(st->health().state()), "NOT_ACCEPTING");
  EXPECT_FALSE(st->health().accepting_commands());
}

TEST_F(AgentE2eTest, SighupReloadsTrustAndKeepsOldTrustOnBadConfig) {
  StartAgent();
  auto second = Ed25519PrivateKey::Generate().value();
  EXPECT_EQ(Send(agent_.Ping(1, &second)).reason, reason::kKeyUnknown);
  auto* k = agent_.config().mutable_trust()->add_keys();
  k->set_public_key(second.PublicRaw());
  k->add_roles("orchestrator");
  ASSERT_THAT(agent_.Reload(), IsOk());
  EXPECT_THAT(Send(agent_.Ping(1, &second)).status, IsOk());
  // Rotation finished: the old key is removed.
  agent_.config().mutable_trust()->mutable_keys()->DeleteSubrange(0, 1);
  ASSERT_THAT(agent_.Reload(), IsOk());
  EXPECT_EQ(Send(agent_.Ping(2)).reason, reason::kKeyUnknown);
  // A broken file keeps the trust we have, and says so.
  std::ofstream(agent_.dir() + "/agent.json") << "{\"node_id\": ";
  ASSERT_THAT(agent_.Reload(/*write_config=*/false), IsOk());
  auto st = agent_.Status();
  ASSERT_THAT(st, IsOk());
  EXPECT_FALSE(st->health().commands().last_reload_error().empty());
  EXPECT_THAT(Send(agent_.Ping(3, &second)).status, IsOk());
}

TEST_F(AgentE2eTest, RefusesToStartWithoutTlsMaterial) {
  agent_.config().mutable_tls()->set_server_key_file(agent_.dir() + "/pki/missing.key");
  EXPECT_FALSE(agent_.Start().ok());
  EXPECT_TRUE(absl::StrContains(agent_.Log(), "load TLS material"));
  agent_.config().mutable_tls()->set_server_key_file(agent_.dir() + "/pki/client.key");
  EXPECT_FALSE(agent_.Start().ok());
  EXPECT_TRUE(absl::StrContains(agent_.Log(), "does not match"));
}

TEST_F(AgentE2eTest, WatchHealthStreamsAfterEachCommand) {
  StartAgent();
  auto ch = agent_.Channel();
  ASSERT_THAT(ch, IsOk());
  auto stub = nodeward::v1::NodeAgent::NewStub(*ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  nodeward::v1::WatchHealthRequest req;
  req.set_max_reports(2);
  auto reader = stub->WatchHealth(&ctx, req);
  nodeward::v1::HealthReport r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.state(), nodeward::v1::HealthReport::SERVING);
  EXPECT_EQ(r.node_id(), agent_.node_id());
  EXPECT_EQ(r.boot_id(), agent_.boot_id());
  ASSERT_THAT(Send(agent_.Ping(1)).status, IsOk());
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.commands().applied(), 1u);
  EXPECT_EQ(r.commands().high_water_mark(), 1u);
  EXPECT_FALSE(reader->Read(&r));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(AgentE2eTest, StandardHealthServiceServes) {
  StartAgent();
  auto ch = agent_.Channel();
  ASSERT_THAT(ch, IsOk());
  auto stub = grpc::health::v1::Health::NewStub(*ch);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(stub->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(AgentE2eTest, OversizeEnvelopesAreRefused) {
  StartAgent();
  auto big = agent_.Ping(1);
  big.set_payload(big.payload() + std::string(66000, 'x'));  // above our cap, below gRPC's
  EXPECT_EQ(Send(big).reason, reason::kEnvelopeTooLarge);
  auto huge = agent_.Ping(1);
  huge.set_payload(std::string(8 << 20, 'x'));
  EXPECT_EQ(Send(huge).status.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(Send(agent_.Ping(1)).status, IsOk());
}

TEST_F(AgentE2eTest, AuditVerifyCliCatchesTampering) {
  StartAgent();
  ASSERT_THAT(Send(agent_.Ping(1)).status, IsOk());
  EXPECT_EQ(Send(agent_.Ping(1)).reason, reason::kSequenceReplayed);
  ASSERT_EQ(agent_.Stop(SIGTERM), 0);
  const std::string audit = agent_.config().state_dir() + "/audit.jsonl";
  std::string out;
  EXPECT_EQ(RunCommand(absl::StrCat(NODEWARDCTL_BIN, " audit verify ", audit), &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "audit chain OK: 4 records")) << out;
  // Edit one decision.
  ASSERT_EQ(RunCommand("sed -i 's/\"rejected\"/\"applied\"/' " + audit, &out), 0);
  EXPECT_EQ(RunCommand(absl::StrCat(NODEWARDCTL_BIN, " audit verify ", audit), &out), 1);
  EXPECT_TRUE(absl::StrContains(out, "BROKEN")) << out;
}

TEST_F(AgentE2eTest, ProvisionBackupKeyInstallsKeyFiles) {
  auto* p = agent_.config().mutable_trust()->add_policies();
  p->set_command_type("provision_backup_key");
  p->add_allowed_roles("orchestrator");
  StartAgent();
  auto key = backup::RsaPrivateKey::Generate().value();
  auto other = backup::RsaPrivateKey::Generate().value();
  auto make = [&](uint64_t seq, const backup::RsaPrivateKey& priv) {
    nodeward::v1::Command c;
    c.set_node_id(agent_.node_id());
    c.set_boot_id(agent_.boot_id());
    c.set_sequence(seq);
    auto* b = c.mutable_provision_backup_key();
    b->set_service_id("pg-main");
    b->set_public_key_pem(key.public_key().ToPem());
    auto pem = priv.ToPkcs8Pem().value();
    b->set_private_key_pem(std::string(pem.view()));
    FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
    return SignCommand(c, {&agent_.key()}).value();
  };
  // A private key that does not match: refused, nothing installed.
  auto bad = Send(make(1, other));
  EXPECT_EQ(bad.status.code(), StatusCode::kInvalidArgument) << bad.status;
  EXPECT_EQ(bad.reason, reason::kBackupKeyInvalid);
  // The refusal's CommandResult trailer: the enum, and the sequence is used.
  EXPECT_EQ(bad.result.reason(), nodeward::v1::BACKUP_KEY_INVALID);
  EXPECT_TRUE(bad.result.sequence_consumed());
  EXPECT_EQ(bad.result.sequence(), 1u);
  EXPECT_EQ(bad.result.code(), static_cast<int>(StatusCode::kInvalidArgument));
  const std::string dir = agent_.config().state_dir() + "/backup-keys/pg-main";
  struct stat st;
  EXPECT_NE(stat((dir + "/current").c_str(), &st), 0);

  auto env = make(2, key);
  auto ok = Send(env);
  ASSERT_THAT(ok.status, IsOk()) << agent_.Log();
  const std::string id = key.public_key().key_id_hex();
  EXPECT_EQ(ok.result.backup_key().key_id(), id);
  EXPECT_TRUE(ok.result.backup_key().changed());
  ASSERT_EQ(stat((dir + "/" + id + ".key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string out;
  EXPECT_EQ(RunCommand("cat " + dir + "/current", &out), 0);
  EXPECT_EQ(out, id + "\n");
  // The installed public key encrypts; the caller's private key decrypts.
  const std::string plain = agent_.dir() + "/plain", enc = agent_.dir() + "/enc";
  ASSERT_EQ(RunCommand("head -c 100000 /dev/urandom > " + plain, &out), 0);
  ASSERT_EQ(RunCommand(absl::StrCat(NODEWARDCTL_BIN, " backup encrypt --public-key ", dir, "/",
                                    id, ".pub --in ", plain, " --out ", enc),
                       &out),
            0)
      << out;
  ASSERT_EQ(RunCommand(absl::StrCat(NODEWARDCTL_BIN, " backup decrypt --quiet --private-key ",
                                    dir, "/", id, ".key --in ", enc, " | cmp - ", plain),
                       &out),
            0)
      << out;
  // Exact replay: recorded outcome, nothing re-applied.
  auto again = Send(env);
  ASSERT_THAT(again.status, IsOk());
  EXPECT_TRUE(again.result.replayed());
}

TEST_F(AgentE2eTest, ProvisionBackupKeyNeedsAPolicy) {
  StartAgent();
  auto key = backup::RsaPrivateKey::Generate().value();
  nodeward::v1::Command c;
  c.set_node_id(agent_.node_id());
  c.set_boot_id(agent_.boot_id());
  c.set_sequence(1);
  c.mutable_provision_backup_key()->set_service_id("pg-main");
  c.mutable_provision_backup_key()->set_public_key_pem(key.public_key().ToPem());
  FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
  auto out = Send(SignCommand(c, {&agent_.key()}).value());
  EXPECT_EQ(out.reason, reason::kKeyNotAllowed);
}

TEST_F(AgentE2eTest, StatusCliPrintsHumanSummary) {
  StartAgent();
  ASSERT_THAT(Send(agent_.Ping(1)).status, IsOk());
  std::string out;
  ASSERT_EQ(RunCommand(absl::StrCat(NODEWARDCTL_BIN, " status --socket ", agent_.dir(),
                                    "/status.sock"),
                       &out),
            0);
  EXPECT_TRUE(absl::StrContains(out, "node e2e-node")) << out;
  EXPECT_TRUE(absl::StrContains(out, "last sequence:  1")) << out;
  EXPECT_TRUE(absl::StrContains(out, "ping  applied")) << out;
}

}  // namespace
}  // namespace nodeward::testing
