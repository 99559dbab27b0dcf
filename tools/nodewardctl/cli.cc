#include "tools/nodewardctl/cli.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

namespace nodeward {
namespace {

#ifndef NODEWARD_VERSION
#define NODEWARD_VERSION "0.1.0"
#endif

// Where CLI11 writes what it parsed, per subcommand: std::map nodes do not
// move, so the references CLI11 holds stay valid.
struct Store {
  std::map<std::string, std::vector<std::string>> values;
  std::map<std::string, bool> flags;
  std::vector<std::string> words;  // positional arguments
};

class Builder {
 public:
  explicit Builder(CLI::App* app) : app_(app) {}
  Builder& Opt(const std::string& name, const std::string& help, bool required = false) {
    auto* o = app_->add_option("--" + name, store_.values[name], help)
                  ->expected(1)
                  ->multi_option_policy(CLI::MultiOptionPolicy::Throw);
    if (required) o->required();
    return *this;
  }
  // May be given several times, one value each.
  Builder& Repeated(const std::string& name, const std::string& help, bool required = false) {
    auto* o = app_->add_option("--" + name, store_.values[name], help)
                  ->expected(1)
                  ->take_all()
                  ->allow_extra_args(false);
    if (required) o->required();
    return *this;
  }
  Builder& Flag(const std::string& name, const std::string& help) {
    app_->add_flag("--" + name, store_.flags[name], help);
    return *this;
  }
  Builder& Word(const std::string& name, const std::string& help) {
    app_->add_option(name, store_.words, help)->required()->expected(1);
    return *this;
  }
  // --in and --out of a filter (stdin and stdout by default).
  Builder& InOut() {
    Opt("in", "input file (default stdin)");
    Opt("out", "output file (default stdout)");
    return *this;
  }
  Builder& Target(bool required = true) {
    Opt("target", "the agent, HOST:PORT", required);
    Opt("ca", "CA bundle that issued the agent's certificate (PEM)", required);
    Opt("cert", "this client's certificate (PEM)", required);
    Opt("key", "this client's private key (PEM)", required);
    Opt("server-name", "name to check in the agent's certificate (default: HOST)");
    Opt("pin-spki",
        "accept the agent by the hex SHA-256 of its key (health: certificates[].spki_sha256) "
        "instead of its chain and validity: the recovery path for an expired identity");
    return *this;
  }
  void Fill(Args* out) const {
    for (const auto& [k, vs] : store_.values) {
      for (const std::string& v : vs) out->values.emplace(k, v);
    }
    for (const auto& [k, on] : store_.flags) {
      if (on) out->values.emplace(k, "1");
    }
    out->positional.insert(out->positional.end(), store_.words.begin(), store_.words.end());
  }

 private:
  CLI::App* app_;
  Store store_;
};

constexpr char kDescription[] =
    "nodewardctl: the nodeward agent's local status and audit tools, backup encryption, and the "
    "reference orchestrator client.\nUsage errors exit 64 (EX_USAGE); see each command's --help "
    "for its other exit codes.";

}  // namespace

std::variant<Args, int> ParseCommandLine(int argc, char** argv) {
  CLI::App app{kDescription, "nodewardctl"};
  app.set_version_flag("--version", "nodewardctl " NODEWARD_VERSION);
  app.require_subcommand(1);
  std::map<CLI::App*, std::unique_ptr<Builder>> builders;
  auto sub = [&](CLI::App* parent, const std::string& name, const std::string& help) {
    CLI::App* a = parent->add_subcommand(name, help);
    builders[a] = std::make_unique<Builder>(a);
    return std::make_pair(a, builders[a].get());
  };

  auto [status, st] = sub(&app, "status", "the agent's status from its local socket (on the VM)");
  st->Opt("socket", "status socket (default /run/nodeward/status.sock)")
      .Flag("json", "the whole report as JSON");

  auto [health, he] = sub(&app, "health",
                          "one health report, from the local socket or (--target) over mTLS; "
                          "exit 0 when it accepts commands, 1 when not");
  (void)health;
  he->Opt("socket", "status socket (default /run/nodeward/status.sock)")
      .Target(/*required=*/false)
      .Flag("json", "the report as JSON (proto field names)");

  auto [audit, au] = sub(&app, "audit", "the audit log");
  audit->require_subcommand(1);
  (void)au;
  auto [audit_verify, av] = sub(audit, "verify", "check the audit hash chain of FILE (exit 1 if broken)");
  (void)audit_verify;
  av->Word("FILE", "the audit log (audit.jsonl)");
  auto [audit_watch, aw] = sub(audit, "watch",
                               "stream the agent's audit chain (WatchAudit), checking each record "
                               "continues it; one JSON record per line (exit 1 if it does not)");
  (void)audit_watch;
  aw->Target()
      .Opt("from", "first record index (default 0)")
      .Opt("count", "stop after N records (default: follow until interrupted)");

  auto [backup, bk] = sub(&app, "backup",
                          "backup encryption (docs/backup-format.md); exit 0 ok, 1 I/O error, "
                          "2 integrity failure, 3 no key fits, 4 not a backup or a bad key, "
                          "64 usage");
  backup->require_subcommand(1);
  (void)bk;
  auto [bkeygen, bkg] = sub(backup, "keygen", "RSA-3072 key pair: PREFIX.key (PKCS#8, 0600), PREFIX.pub");
  (void)bkeygen;
  bkg->Opt("out", "file name prefix", true);
  auto [benc, be] = sub(backup, "encrypt", "encrypt a file (or stdin) for a public key");
  (void)benc;
  be->Opt("public-key", "the service's RSA-3072 public key (PEM)", true)
      .Opt("format", "v2 (default) or v1 (pghoard's pghoa1)")
      .InOut()
      .Opt("chunk-size", "plaintext bytes per authenticated chunk (v2)");
  auto [bdec, bd] = sub(backup, "decrypt", "decrypt and verify; nothing is left at --out on failure");
  (void)bdec;
  bd->Repeated("private-key", "a private key to try (PEM); repeat for several", true)
      .InOut()
      .Flag("accept-empty", "accept a backup of zero bytes")
      .Flag("quiet", "print nothing on success");
  auto [binsp, bi] = sub(backup, "inspect", "print a backup's header without decrypting");
  (void)binsp;
  bi->Opt("in", "input file (default stdin)");

  auto [keygen, kg] = sub(&app, "keygen",
                          "Ed25519 signing key: PREFIX.key (0600), PREFIX.pub.json (a trust.keys entry)");
  (void)keygen;
  kg->Opt("out", "file name prefix", true)
      .Repeated("role", "role of the key in trust.keys; repeat for several (default orchestrator)");

  auto [devpki, dp] = sub(&app, "dev-pki", "throwaway CA, agent and client certificates (development only)");
  (void)devpki;
  dp->Opt("out", "directory to write to", true)
      .Repeated("server-san",
                "a name in the agent's certificate: DNS name or IP address; repeat for several "
                "(default localhost, 127.0.0.1, ::1)")
      .Flag("with-test-certs", "also certificates the tests use to be refused");

  auto [send, sd] = sub(&app, "send", "sign a command and send it to the agent over mutual TLS");
  sd->Target()
      .Repeated("signing-key", "Ed25519 signing key (PEM); repeat for several signers")
      .Opt("command", "the Command as JSON")
      .Opt("command-file", "the Command as JSON, from a file")
      .Opt("envelope", "a signed envelope (JSON) to send as is")
      .Opt("payload-type", "payload type to sign (default the current one)")
      .Opt("boot-id-file", "the agent's boot id, to bind the command to that boot")
      .Opt("lifetime-seconds", "how long the command is valid (default 300)")
      .Flag("dry-run", "print the signed envelope, send nothing")
      .Opt("timeout-seconds", "how long to wait for the outcome (default 10)");
  auto* envelope_opt = send->get_option("--envelope");
  send->get_option("--command")->excludes(envelope_opt)->excludes("--command-file");
  send->get_option("--command-file")->excludes(envelope_opt);

  auto [watch, wa] = sub(&app, "watch", "stream health reports");
  (void)watch;
  wa->Target()
      .Opt("count", "stop after N reports")
      .Opt("min-interval-ms", "no two reports closer than this; bursts are coalesced");

  auto [receipt, rc] = sub(&app, "wipe-receipt", "wipe receipts");
  receipt->require_subcommand(1);
  (void)rc;
  auto [receipt_verify, rv] = sub(receipt, "verify",
                                  "check a Wipe result against the agent's signing public key "
                                  "(exit 3 if not valid or not complete)");
  (void)receipt_verify;
  rv->Opt("key", "the agent's signing public key (base64 or PEM), never its TLS certificate", true)
      .Opt("in", "the output of `send` for the Wipe (default stdin)");
  (void)status;
  (void)send;

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the error
    return code == 0 ? 0 : kExitUsage;
  }
  Args out;
  for (CLI::App* level = &app;;) {
    std::vector<CLI::App*> chosen = level->get_subcommands();
    if (chosen.empty()) break;
    level = chosen.front();
    out.positional.push_back(level->get_name());
  }
  // Words after the path: only the deepest subcommand has any.
  for (CLI::App* level = &app;;) {
    std::vector<CLI::App*> chosen = level->get_subcommands();
    if (chosen.empty()) break;
    level = chosen.front();
    builders.at(level)->Fill(&out);
  }
  return out;
}

}  // namespace nodeward
