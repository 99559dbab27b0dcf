#include "tools/nodewardctl/client.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/common/crypto.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

#include <openssl/rand.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/command/command_types.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "nodeward/v1/agent.grpc.pb.h"

namespace nodeward {
absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("read ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string NewCommandId() {
  unsigned char b[16];
  RAND_bytes(b, sizeof(b));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  std::string hex = HexEncode(absl::string_view(reinterpret_cast<char*>(b), sizeof(b)));
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

void FillCommandDefaults(nodeward::v1::Command* c, absl::Time now, absl::Duration lifetime) {
  if (c->command_id().empty()) c->set_command_id(NewCommandId());
  if (!c->has_issued_at()) c->mutable_issued_at()->set_seconds(absl::ToUnixSeconds(now));
  if (!c->has_expires_at()) {
    c->mutable_expires_at()->set_seconds(absl::ToUnixSeconds(now + lifetime));
  }
}

absl::StatusOr<nodeward::v1::SignedCommand> SignCommand(
    const nodeward::v1::Command& command, const std::vector<const Ed25519PrivateKey*>& keys,
    std::string payload_type) {
  if (payload_type.empty()) {
    std::string type = CommandTypeOf(command);
    if (type.empty()) return absl::InvalidArgumentError("sign command: no body is set");
    payload_type = PayloadTypeFor(type);
  }
  nodeward::v1::SignedCommand env;
  env.set_payload(command.SerializeAsString());
  env.set_payload_type(payload_type);
  const std::string pae = Pae(env.payload_type(), env.payload());
  for (const Ed25519PrivateKey* k : keys) {
    absl::StatusOr<std::string> sig = k->Sign(pae);
    if (!sig.ok()) return sig.status();
    auto* s = env.add_signatures();
    s->set_key_id(k->KeyId());
    s->set_sig(*sig);
  }
  return env;
}

namespace {

// Accepts the server when its leaf's SubjectPublicKeyInfo hashes to the pin.
class SpkiPin final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit SpkiPin(std::string pin) : pin_(std::move(pin)) {}
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    const grpc::string_ref pem = request->peer_cert();
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* leaf = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    std::string got;
    if (leaf != nullptr) {
      unsigned char* der = nullptr;
      const int n = i2d_PUBKEY(X509_get0_pubkey(leaf), &der);
      if (n > 0) {
        got = HexEncode(Sha256(absl::string_view(reinterpret_cast<char*>(der),
                                                 static_cast<size_t>(n))));
      }
      OPENSSL_free(der);
      X509_free(leaf);
    }
    *sync_status = got == pin_ ? grpc::Status::OK
                               : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                              "the agent's key is not the pinned one");
    return true;  // answered synchronously
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string pin_;
};

}  // namespace

std::shared_ptr<grpc::ChannelCredentials> PinnedCredentials(const grpc::SslCredentialsOptions& o,
                                                            const std::string& pin) {
  std::vector<grpc::experimental::IdentityKeyCertPair> identity;
  if (!o.pem_cert_chain.empty()) identity.push_back({o.pem_private_key, o.pem_cert_chain});
  auto provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
      o.pem_root_certs, identity);
  grpc::experimental::TlsChannelCredentialsOptions opts;
  opts.set_certificate_provider(provider);
  opts.watch_root_certs();
  if (!identity.empty()) opts.watch_identity_key_cert_pairs();
  // The pin replaces the chain, name and validity checks, nothing else.
  opts.set_verify_server_certs(false);
  opts.set_check_call_host(false);
  opts.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<SpkiPin>(pin));
  return grpc::experimental::TlsCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeAgentChannel(const std::string& target,
                                                                const ClientTls& tls) {
  grpc::SslCredentialsOptions o;
  absl::StatusOr<std::string> ca = ReadTextFile(tls.ca_file);
  if (!ca.ok()) return ca.status();
  o.pem_root_certs = *ca;
  if (!tls.cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadTextFile(tls.cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadTextFile(tls.key_file);
    if (!key.ok()) return key.status();
    o.pem_cert_chain = *cert;
    o.pem_private_key = *key;
  }
  grpc::ChannelArguments args;
  if (!tls.pin_spki.empty()) {
    args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 4 << 20);
    if (tls.connection_tag != 0) args.SetInt("nodeward.connection_tag", tls.connection_tag);
    return grpc::CreateCustomChannel(target, PinnedCredentials(o, tls.pin_spki), args);
  }
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 4 << 20);
  if (tls.connection_tag != 0) args.SetInt("nodeward.connection_tag", tls.connection_tag);
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(o), args);
}

ExecuteOutcome ExecuteCommand(grpc::Channel* channel, const nodeward::v1::SignedCommand& envelope,
                              absl::Duration timeout) {
  auto stub = nodeward::v1::NodeAgent::NewStub(
      std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  ExecuteOutcome out;
  grpc::Status s = stub->Execute(&ctx, envelope, &out.result);
  out.status = absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  auto md = ctx.GetServerTrailingMetadata();
  auto it = md.find("nodeward-reason");
  if (it != md.end()) out.reason = std::string(it->second.data(), it->second.size());
  if (!s.ok()) {
    out.result.Clear();
    auto r = md.find("nodeward-result-bin");
    if (r != md.end() &&
        !out.result.ParseFromString(std::string(r->second.data(), r->second.size()))) {
      out.result.Clear();
    }
  }
  return out;
}

}  // namespace nodeward
