// bench-cert: RequestCertificate and InstallCertificate round trips over
// mTLS (key generation per type, chain validation, the fsynced versioned
// install and swap), the agent's own identity from install to the first new
// handshake on the new certificate, and a signed Ping side by side as the
// baseline: the same signed pipeline with nothing to do.
// A program, not a test: it prints figures and never asserts on time.
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "nodeward/v1/agent.grpc.pb.h"
#include "tests/common/test_ca.h"
#include "tools/nodewardctl/client.h"

ABSL_FLAG(std::string, target, "", "agent host:port");
ABSL_FLAG(std::string, ca, "", "CA file (also signs the CSRs)");
ABSL_FLAG(std::string, ca_key, "", "the CA's key");
ABSL_FLAG(std::string, cert, "", "client certificate");
ABSL_FLAG(std::string, key, "", "client key");
ABSL_FLAG(std::string, signing_key, "", "Ed25519 signing key (PEM)");
ABSL_FLAG(std::string, node_id, "", "agent node id");
ABSL_FLAG(std::string, boot_id_file, "/proc/sys/kernel/random/boot_id", "agent boot id file");
ABSL_FLAG(int, rounds, 30, "rounds per measurement");

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class Bench {
 public:
  Bench(std::shared_ptr<grpc::Channel> ch, nodeward::Ed25519PrivateKey key, std::string node,
        std::string boot)
      : ch_(std::move(ch)), key_(std::move(key)), node_(std::move(node)), boot_(std::move(boot)),
        ca_(ReadAll(absl::GetFlag(FLAGS_ca)), ReadAll(absl::GetFlag(FLAGS_ca_key))) {}

  // One command's round trip in ms (signing excluded); the result out.
  double Time(nodeward::v1::Command c, nodeward::v1::CommandResult* out) {
    c.set_node_id(node_);
    c.set_boot_id(boot_);
    c.set_sequence(++seq_);
    nodeward::FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
    nodeward::v1::SignedCommand env = nodeward::SignCommand(c, {&key_}).value();
    const auto t0 = Clock::now();
    nodeward::ExecuteOutcome r = nodeward::ExecuteCommand(ch_.get(), env, absl::Seconds(30));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!r.status.ok()) {
      std::fprintf(stderr, "bench-cert: %s\n", r.status.ToString().c_str());
      std::exit(1);
    }
    if (out != nullptr) *out = r.result;
    return ms;
  }
  double Ping() {
    nodeward::v1::Command c;
    c.mutable_ping();
    return Time(c, nullptr);
  }
  double Request(const std::string& target, std::string* csr) {
    nodeward::v1::Command c;
    c.mutable_request_certificate()->set_target(target);
    nodeward::v1::CommandResult r;
    const double ms = Time(c, &r);
    *csr = r.certificate().csr_pem();
    return ms;
  }
  std::string Sign(const std::string& csr, std::vector<std::string> sans) {
    EVP_PKEY* k = nodeward::testing::TestCa::CsrKey(csr);
    nodeward::testing::TestCa::Leaf l;
    l.sans = std::move(sans);
    l.not_before = absl::Now() - absl::Minutes(1);
    l.not_after = absl::Now() + absl::Hours(24 * 30);
    std::string chain = ca_.Issue(k, l);
    EVP_PKEY_free(k);
    return chain;
  }
  double Install(const std::string& target, const std::string& chain) {
    nodeward::v1::Command c;
    c.mutable_install_certificate()->set_target(target);
    c.mutable_install_certificate()->set_chain_pem(chain);
    return Time(c, nullptr);
  }

 private:
  std::shared_ptr<grpc::Channel> ch_;
  nodeward::Ed25519PrivateKey key_;
  std::string node_, boot_;
  nodeward::testing::TestCa ca_;
  uint64_t seq_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  nodeward::ClientTls tls;
  tls.ca_file = absl::GetFlag(FLAGS_ca);
  tls.cert_file = absl::GetFlag(FLAGS_cert);
  tls.key_file = absl::GetFlag(FLAGS_key);
  tls.server_name = "localhost";
  auto ch = nodeward::MakeAgentChannel(absl::GetFlag(FLAGS_target), tls);
  auto key = nodeward::Ed25519PrivateKey::FromPemFile(absl::GetFlag(FLAGS_signing_key));
  if (!ch.ok() || !key.ok()) {
    std::fprintf(stderr, "bench-cert: channel or key\n");
    return 1;
  }
  std::ifstream boot_in(absl::GetFlag(FLAGS_boot_id_file));
  std::stringstream boot;
  boot << boot_in.rdbuf();
  Bench b(*ch, std::move(key).value(), absl::GetFlag(FLAGS_node_id),
          std::string(absl::StripAsciiWhitespace(boot.str())));
  const int n = absl::GetFlag(FLAGS_rounds);
  const std::vector<std::string> svc_sans = {"db-7.internal"};
  std::vector<double> ping, install, identity;
  std::map<std::string, std::vector<double>> request;
  for (int i = 0; i < n; ++i) {
    ping.push_back(b.Ping());
    std::string csr;
    for (const char* t : {"p256", "ed25519", "rsa3072"}) {
      request[t].push_back(b.Request(t, &csr));
      install.push_back(b.Install(t, b.Sign(csr, svc_sans)));
    }
  }
  // The identity: the install returns when a new handshake is served the
  // new certificate (gRPC's provider re-reads the files every second).
  const int identity_rounds = std::min(n, 5);
  for (int i = 0; i < identity_rounds; ++i) {
    std::string csr;
    b.Request("agent", &csr);
    identity.push_back(b.Install("agent", b.Sign(csr, {"localhost", "127.0.0.1", "::1"})));
  }
  const double p = Median(ping);
  std::printf("%-44s %10s %10s\n", "median of rounds", "ms", "x Ping");
  std::printf("%-44s %10.2f %10.2f\n", "Ping (baseline: the signed pipeline)", p, 1.0);
  for (const char* t : {"p256", "ed25519", "rsa3072"}) {
    const double m = Median(request[t]);
    std::printf("%-44s %10.2f %10.2f\n", (std::string("RequestCertificate ") + t).c_str(), m, m / p);
  }
  const double inst = Median(install);
  std::printf("%-44s %10.2f %10.2f\n", "InstallCertificate (validate, fsync, swap)", inst, inst / p);
  const double id = Median(identity);
  std::printf("%-44s %10.2f %10.2f\n", "identity install to new handshake", id, id / p);
  std::printf("bench-cert request_ms_p256=%.2f install_ms=%.2f reload_to_new_handshake_ms=%.0f\n",
              Median(request["p256"]), inst, id);
  return 0;
}
