// nodewardctl: local status, audit verification, and the reference
// orchestrator client (keygen, dev-pki, send, watch). Run without arguments
// for usage.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/common/crypto.h"
#include "agent/common/proto_util.h"
#include "agent/common/secure_buffer.h"
#include "agent/state/audit_log.h"
#include "agent/wipe/receipt.h"
#include "grpcpp/client_context.h"
#include "nodeward/v1/agent.grpc.pb.h"
#include "nodeward/v1/state.pb.h"
#include "tools/nodewardctl/backup_cli.h"
#include "tools/nodewardctl/cli.h"
#include "tools/nodewardctl/client.h"
#include "tools/nodewardctl/dev_pki.h"
#include "tools/nodewardctl/report_text.h"

namespace nodeward {
namespace {



int Fail(const absl::Status& s) {
  std::cerr << "nodewardctl: " << s.message() << "\n";
  return 1;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(const Args& a) {
  if (a.Get("target").empty() || a.Get("ca").empty() || a.Get("cert").empty() ||
      a.Get("key").empty()) {
    return absl::InvalidArgumentError("--target, --ca, --cert and --key are required");
  }
  ClientTls tls;
  tls.ca_file = a.Get("ca");
  tls.cert_file = a.Get("cert");
  tls.key_file = a.Get("key");
  tls.server_name = a.Get("server-name");
  tls.pin_spki = a.Get("pin-spki");
  return MakeAgentChannel(a.Get("target"), tls);
}

int Keygen(const Args& a) {
  std::string prefix = a.Get("out");
  if (prefix.empty()) return Fail(absl::InvalidArgumentError("keygen: --out PREFIX is required"));
  auto key = Ed25519PrivateKey::Generate();
  if (!key.ok()) return Fail(key.status());
  auto pem = key->ToPem();
  if (!pem.ok()) return Fail(pem.status());
  std::string key_path = prefix + ".key";
  int fd = open(key_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(absl::ErrnoToStatus(errno, "create " + key_path));
  bool ok = write(fd, pem->data(), pem->size()) == static_cast<ssize_t>(pem->size());
  close(fd);
  if (!ok) return Fail(absl::InternalError("write " + key_path));
  // --role R (repeatable): the trust.keys roles, orchestrator by default.
  std::vector<std::string> roles;
  for (auto [it, end] = a.values.equal_range("role"); it != end; ++it) {
    roles.push_back(absl::StrCat("\"", it->second, "\""));
  }
  if (roles.empty()) roles.push_back("\"orchestrator\"");
  std::string entry = absl::StrCat("{\"public_key\": \"", absl::Base64Escape(key->PublicRaw()),
                                   "\", \"key_id\": \"", key->KeyId(), "\", \"roles\": [",
                                   absl::StrJoin(roles, ", "), "]}\n");
  std::ofstream(prefix + ".pub.json") << entry;
  std::cout << "key_id " << key->KeyId() << "\n"
            << "wrote " << key_path << " (keep it secret) and " << prefix
            << ".pub.json (add it to trust.keys)\n";
  return 0;
}

int DevPki(const Args& a) {
  DevPkiOptions o;
  o.out_dir = a.Get("out");
  if (o.out_dir.empty()) return Fail(absl::InvalidArgumentError("dev-pki: --out DIR is required"));
  o.with_test_certs = a.Has("with-test-certs");
  o.server_sans = a.All("server-san");
  absl::Status s = GenerateDevPki(o);
  if (!s.ok()) return Fail(s);
  std::cout << "wrote dev PKI to " << o.out_dir << " (ca, server, client; for development only)\n";
  return 0;
}

absl::StatusOr<nodeward::v1::SignedCommand> BuildEnvelope(const Args& a) {
  nodeward::v1::SignedCommand env;
  if (a.Has("envelope")) {
    absl::StatusOr<std::string> text = ReadTextFile(a.Get("envelope"));
    if (!text.ok()) return text.status();
    absl::Status s = ParseJson(*text, &env, "envelope " + a.Get("envelope"));
    if (!s.ok()) return s;
    return env;
  }
  std::string json = a.Get("command");
  if (a.Has("command-file")) {
    absl::StatusOr<std::string> text = ReadTextFile(a.Get("command-file"));
    if (!text.ok()) return text.status();
    json = *text;
  }
  if (json.empty()) {
    return absl::InvalidArgumentError("send: one of --command, --command-file, --envelope");
  }
  nodeward::v1::Command cmd;
  absl::Status s = ParseJson(json, &cmd, "command");
  if (!s.ok()) return s;
  if (cmd.boot_id().empty() && a.Has("boot-id-file")) {
    absl::StatusOr<std::string> boot = ReadTextFile(a.Get("boot-id-file"));
    if (!boot.ok()) return boot.status();
    cmd.set_boot_id(std::string(absl::StripAsciiWhitespace(*boot)));
  }
  int lifetime = 300;
  if (a.Has("lifetime-seconds") && !absl::SimpleAtoi(a.Get("lifetime-seconds"), &lifetime)) {
    return absl::InvalidArgumentError("send: --lifetime-seconds is not a number");
  }
  FillCommandDefaults(&cmd, absl::Now(), absl::Seconds(lifetime));
  std::vector<Ed25519PrivateKey> keys;
  for (const auto& path : a.All("signing-key")) {
    absl::StatusOr<Ed25519PrivateKey> k = Ed25519PrivateKey::FromPemFile(path);
    if (!k.ok()) return k.status();
    keys.push_back(std::move(k).value());
  }
  if (keys.empty()) return absl::InvalidArgumentError("send: at least one --signing-key");
  std::vector<const Ed25519PrivateKey*> ptrs;
  for (const auto& k : keys) ptrs.push_back(&k);
  return SignCommand(cmd, ptrs, a.Get("payload-type"));
}

int Send(const Args& a) {
  absl::StatusOr<nodeward::v1::SignedCommand> env = BuildEnvelope(a);
  if (!env.ok()) return Fail(env.status());
  if (a.Has("dry-run")) {
    std::cout << ToJsonPretty(*env) << "\n";
    return 0;
  }
  auto channel = Channel(a);
  if (!channel.ok()) return Fail(channel.status());
  int timeout_s = 10;
  if (a.Has("timeout-seconds") &&
      (!absl::SimpleAtoi(a.Get("timeout-seconds"), &timeout_s) || timeout_s <= 0)) {
    return Fail(absl::InvalidArgumentError("send: --timeout-seconds is not a positive number"));
  }
  ExecuteOutcome out = ExecuteCommand(channel->get(), *env, absl::Seconds(timeout_s));
  if (!out.status.ok()) {
    absl::string_view msg = out.status.message();
    absl::ConsumePrefix(&msg, out.reason + ": ");
    std::cout << "REJECTED code=" << absl::StatusCodeToString(out.status.code())
              << " reason=" << (out.reason.empty() ? "-" : out.reason)
              << " sequence_consumed=" << (out.result.sequence_consumed() ? "yes" : "no") << ": "
              << msg << "\n";
    return 2;
  }
  std::cout << (out.result.replayed() ? "REPLAYED (recorded outcome, nothing applied) "
                                      : "APPLIED ")
            << ToJsonLine(out.result) << "\n";
  return 0;
}

int Watch(const Args& a) {
  auto channel = Channel(a);
  if (!channel.ok()) return Fail(channel.status());
  uint32_t count = 0;
  if (a.Has("count") && !absl::SimpleAtoi(a.Get("count"), &count)) {
    return Fail(absl::InvalidArgumentError("watch: --count is not a number"));
  }
  auto stub = nodeward::v1::NodeAgent::NewStub(*channel);
  grpc::ClientContext ctx;
  nodeward::v1::WatchHealthRequest req;
  req.set_max_reports(count);
  uint32_t interval = 0;
  if (a.Has("min-interval-ms") && !absl::SimpleAtoi(a.Get("min-interval-ms"), &interval)) {
    return Fail(absl::InvalidArgumentError("watch: --min-interval-ms is not a number"));
  }
  req.set_min_interval_ms(interval);
  auto reader = stub->WatchHealth(&ctx, req);
  nodeward::v1::HealthReport r;
  while (reader->Read(&r)) std::cout << ToJsonLine(r) << std::endl;
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    std::cout << "watch ended: " << s.error_message() << "\n";
    return 1;
  }
  return 0;
}

absl::StatusOr<std::string> ReadStatusSocket(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "create socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    close(fd);
    return absl::InvalidArgumentError("status socket path too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, "connect to status socket " + path);
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1 << 20)) break;
  }
  close(fd);
  return out;
}

absl::StatusOr<nodeward::v1::StatusReport> ReadStatus(const Args& a) {
  std::string path = a.Get("socket", "/run/nodeward/status.sock");
  absl::StatusOr<std::string> raw = ReadStatusSocket(path);
  if (!raw.ok()) return raw.status();
  nodeward::v1::StatusReport r;
  absl::Status s = ParseJson(*raw, &r, "status");
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("agent said: ", absl::StripAsciiWhitespace(*raw)));
  }
  return r;
}

int Status(const Args& a) {
  absl::StatusOr<nodeward::v1::StatusReport> r = ReadStatus(a);
  if (!r.ok()) return Fail(r.status());
  if (a.Has("json")) {
    std::cout << ToJsonPretty(*r) << "\n";
  } else {
    PrintStatusText(*r, std::cout);
  }
  return 0;
}

// One health report: from the local socket, or (--target) over mTLS.
int Health(const Args& a) {
  nodeward::v1::HealthReport h;
  if (a.Has("target")) {
    auto channel = Channel(a);
    if (!channel.ok()) return Fail(channel.status());
    auto stub = nodeward::v1::NodeAgent::NewStub(*channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    nodeward::v1::WatchHealthRequest req;
    req.set_max_reports(1);
    auto reader = stub->WatchHealth(&ctx, req);
    const bool got = reader->Read(&h);
    grpc::Status s = reader->Finish();
    if (!got || !s.ok()) {
      return Fail(absl::UnavailableError(absl::StrCat("health: ", s.error_message())));
    }
  } else {
    absl::StatusOr<nodeward::v1::StatusReport> r = ReadStatus(a);
    if (!r.ok()) return Fail(r.status());
    h = r->health();
  }
  if (a.Has("json")) {
    std::cout << ToJsonPretty(h) << "\n";
  } else {
    PrintHealthText(h, std::cout);
  }
  // Like a probe: 0 accepting commands, 1 not.
  return h.accepting_commands() ? 0 : 1;
}

// What an orchestrator does with the stream: checks each record continues
// the chain (index, prev_hash, hash) before it keeps it.
int AuditWatch(const Args& a) {
  auto channel = Channel(a);
  if (!channel.ok()) return Fail(channel.status());
  uint64_t from = 0, count = 0;
  if ((a.Has("from") && !absl::SimpleAtoi(a.Get("from"), &from)) ||
      (a.Has("count") && !absl::SimpleAtoi(a.Get("count"), &count))) {
    return Fail(absl::InvalidArgumentError("audit watch: --from and --count are numbers"));
  }
  auto stub = nodeward::v1::NodeAgent::NewStub(*channel);
  grpc::ClientContext ctx;
  nodeward::v1::WatchAuditRequest req;
  req.set_from_index(from);
  auto reader = stub->WatchAudit(&ctx, req);
  nodeward::v1::AuditBatch b;
  uint64_t seen = 0;
  std::string prev;
  while ((count == 0 || seen < count) && reader->Read(&b)) {
    for (const nodeward::v1::AuditRecord& r : b.records()) {
      const bool continues = r.index() == from + seen && AuditRecordHash(r) == r.hash() &&
                             (seen == 0 ? (r.index() != 0 || r.prev_hash() == std::string(64, '0'))
                                        : r.prev_hash() == prev);
      if (!continues) {
        std::cout << "audit stream BROKEN at record " << r.index() << "\n";
        ctx.TryCancel();
        return 1;
      }
      std::cout << ToJsonLine(r) << std::endl;
      prev = r.hash();
      if (count != 0 && ++seen >= count) break;
      if (count == 0) ++seen;
    }
  }
  ctx.TryCancel();
  grpc::Status s = reader->Finish();
  if (count != 0 && seen >= count) return 0;
  std::cout << "audit watch ended: " << s.error_message() << "\n";
  return s.ok() ? 0 : 1;
}

int AuditVerify(const Args& a) {
  if (a.positional.size() < 3) return Fail(absl::InvalidArgumentError("audit verify FILE"));
  absl::StatusOr<std::string> text = ReadTextFile(a.positional[2]);
  if (!text.ok()) return Fail(text.status());
  absl::StatusOr<AuditSummary> v = VerifyAuditChain(*text);
  if (!v.ok()) {
    std::cout << "audit chain BROKEN: " << v.status().message() << "\n";
    return 1;
  }
  std::cout << "audit chain OK: " << v->records << " records, head " << v->last_hash << "\n";
  return 0;
}

int WipeReceiptVerify(const Args& a) {
  if (a.Get("key").empty()) {
    return Fail(absl::InvalidArgumentError(
        "--key FILE is required: the agent's signing public key as health reports it "
        "(signing_public_key, base64) or a PEM PUBLIC KEY"));
  }
  absl::StatusOr<std::string> key_text = ReadTextFile(a.Get("key"));
  if (!key_text.ok()) return Fail(key_text.status());
  absl::StatusOr<Ed25519PublicKey> key = nodeward::wipe::ParseSigningPublicKey(*key_text);
  if (!key.ok()) return Fail(key.status());
  std::string text;
  if (a.Get("in").empty() || a.Get("in") == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    absl::StatusOr<std::string> t = ReadTextFile(a.Get("in"));
    if (!t.ok()) return Fail(t.status());
    text = *t;
  }
  // `send` prints "APPLIED {json}" or "REPLAYED (...) {json}".
  const size_t brace = text.find('{');
  if (brace == std::string::npos) return Fail(absl::InvalidArgumentError("no JSON result found"));
  nodeward::v1::CommandResult result;
  if (absl::Status s = nodeward::ParseJson(text.substr(brace), &result, "command result"); !s.ok()) {
    return Fail(s);
  }
  if (!result.has_wipe()) return Fail(absl::InvalidArgumentError("not the result of a Wipe"));
  absl::StatusOr<nodeward::v1::WipeReceipt> r = nodeward::wipe::VerifyReceipt(result.wipe(), *key);
  if (!r.ok()) {
    std::cerr << "wipe receipt NOT valid: " << r.status().message() << "\n";
    return 3;
  }
  std::cout << ToJsonPretty(*r) << "\nwipe receipt OK: signed by key " << key->key_id() << " ("
            << result.wipe().signature_algorithm() << "), " << r->items_size() << " items, "
            << (r->complete() ? "complete" : "NOT complete") << "\n";
  return r->complete() ? 0 : 3;
}

int Run(int argc, char** argv) {
  std::variant<Args, int> parsed = ParseCommandLine(argc, argv);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const Args& a = std::get<Args>(parsed);
  const std::string& cmd = a.positional[0];
  if (cmd == "keygen") return Keygen(a);
  if (cmd == "dev-pki") return DevPki(a);
  if (cmd == "send") return Send(a);
  if (cmd == "watch") return Watch(a);
  if (cmd == "status") return Status(a);
  if (cmd == "health") return Health(a);
  if (cmd == "backup") {
    return RunBackupCommand({a.positional.begin() + 1, a.positional.end()}, a.values);
  }
  if (cmd == "wipe-receipt") return WipeReceiptVerify(a);
  if (cmd == "audit") return a.positional[1] == "watch" ? AuditWatch(a) : AuditVerify(a);
  return kExitUsage;  // CLI11 knows every command; not reached
}

}  // namespace
}  // namespace nodeward

int main(int argc, char** argv) {
  // nodewardctl holds orchestrator signing keys: never in a core file.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // And OpenSSL's own copies of them (and of backup private keys) in locked,
  // non-dumpable memory.
  if (absl::Status s = nodeward::EnableOpenSslSecureHeap(1 << 20); !s.ok()) {
    std::cerr << "nodewardctl: warning: private keys inside OpenSSL: " << s.message() << "\n";
  }
  return nodeward::Run(argc, argv);
}
