#include "agent/cert/cert_manager.h"

#include <openssl/evp.h>

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/cert/cert_internal.h"
#include "agent/cert/x509.h"
#include "agent/common/crypto.h"
#include "agent/common/reason.h"
#include "agent/common/secure_buffer.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"

namespace nodeward::cert {
namespace {

using internal::kMaxBundle;
using internal::kMaxChain;
using internal::kMaxPendingKeyBytes;
using internal::Refuse;
using internal::ValidName;
using internal::ValidSan;

using nodeward::v1::CertificateHealth;
using nodeward::v1::CertificateTarget;
using nodeward::v1::CommandResult;

std::string VersionDir(const CertificateTarget& t, uint32_t v) {
  return absl::StrCat(t.directory(), "/v", v);
}

}  // namespace

CertificateManager::CertificateManager(CertDeps deps, CertOptions options)
    : deps_(deps), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<CertificateManager>> CertificateManager::Create(CertDeps deps,
                                                                              CertOptions options) {
  std::set<std::string> names;
  for (const CertificateTarget& t : options.targets) {
    if (!ValidName(t.name()) || !names.insert(t.name()).second ||
        (!options.client_ca_file.empty() && t.name() == kClientCaTarget)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config: certificates.targets: name '", t.name().substr(0, 64),
          "' is not [a-z0-9][a-z0-9-]{0,62}, is used twice or is the client CA's"));
    }
    if (t.directory().size() < 2 || t.directory()[0] != '/' || t.directory().back() == '/' ||
        absl::StrContains(t.directory(), "/../") || absl::StrContains(t.directory(), "/./")) {
      return absl::InvalidArgumentError(absl::StrCat("config: certificate target ", t.name(),
                                                     ": directory must be an absolute path"));
    }
    if (t.reload().how() == nodeward::v1::ReloadAction::AGENT_IDENTITY) {
      if (!deps.served_spki) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config: certificate target ", t.name(), ": AGENT_IDENTITY needs the listener probe"));
      }
    } else if (!t.reload().unit().empty() && deps.services == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config: certificate target ", t.name(), ": reload needs a service manager"));
    }
    for (const std::string& s : t.allowed_sans()) {
      if (!ValidSan(s)) {
        return absl::InvalidArgumentError(absl::StrCat("config: certificate target ", t.name(),
                                                       ": allowed_sans '", s.substr(0, 64),
                                                       "' is not a DNS name or IP address"));
      }
    }
  }
  return std::unique_ptr<CertificateManager>(new CertificateManager(deps, std::move(options)));
}

const CertificateTarget* CertificateManager::Find(const std::string& name) const {
  for (const CertificateTarget& t : options_.targets) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<const CertificateTarget*> CertificateManager::Target(const std::string& name) const {
  const CertificateTarget* t = Find(name);
  if (t == nullptr) {
    return Refuse(absl::StatusCode::kNotFound, reason::kCertTargetUnknown, name.substr(0, 64),
                  "no such target in certificates.targets");
  }
  return t;
}

std::string CertificateManager::PendingPath(const std::string& target) const {
  return absl::StrCat(options_.state_dir, "/certs/", target, ".pending.key");
}

absl::Time CertificateManager::RenewalDue(absl::Time not_before, absl::Time not_after,
                                          const std::string& node_id, const std::string& target) {
  const absl::Duration life = not_after - not_before;
  const std::string h = Sha256(absl::StrCat(node_id, "/", target));
  const uint32_t r = (static_cast<uint8_t>(h[0]) << 8) | static_cast<uint8_t>(h[1]);  // 0..65535
  const absl::Duration jitter = life * 0.05 * (r / 65535.0);
  return not_before + life * 2 / 3 - jitter;
}

absl::StatusOr<CommandResult> CertificateManager::Apply(const VerifiedCommand& command) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<CommandResult> r =
      command.command.has_request_certificate()   ? Request(command.command.request_certificate())
      : command.command.has_update_ca_bundle()
          ? (command.command.update_ca_bundle().client_ca()
                 ? UpdateClientCa(command.command.update_ca_bundle(), command.peer_chain_pem)
                 : UpdateBundle(command.command.update_ca_bundle()))
                                                  : Install(command.command.install_certificate());
  if (!r.ok()) return WithDefaultReason(r.status(), reason::kCertStoreFailed);
  return r;
}

absl::StatusOr<uint32_t> CertificateManager::CurrentVersion(const CertificateTarget& t) {
  const std::string link = t.directory() + "/current";
  absl::StatusOr<std::string> to = deps_.fs->ReadSymlink(link);
  if (absl::IsNotFound(to.status())) return 0u;
  uint32_t v = 0;
  if (!to.ok() || to->size() < 2 || (*to)[0] != 'v' || !absl::SimpleAtoi(to->substr(1), &v) ||
      v == 0) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertTargetForeign, t.name(),
                  absl::StrCat(link, " is not the agent's version link (",
                               to.ok() ? "points at " + *to : std::string(to.status().message()),
                               "); not touched"));
  }
  return v;
}

absl::StatusOr<CommandResult> CertificateManager::Request(const nodeward::v1::RequestCertificate& c) {
  ASSIGN_OR_RETURN(const CertificateTarget* t, Target(c.target()));
  std::vector<std::string> sans(c.sans().begin(), c.sans().end());
  if (sans.empty()) sans.assign(t->allowed_sans().begin(), t->allowed_sans().end());
  const std::set<std::string> allowed(t->allowed_sans().begin(), t->allowed_sans().end());
  for (const std::string& s : sans) {
    if (!ValidSan(s) || (!allowed.empty() && allowed.count(s) == 0)) {
      return Refuse(absl::StatusCode::kInvalidArgument, reason::kCertSanNotAllowed, t->name(),
                    absl::StrCat("SAN '", s.substr(0, 64), "' is not in the target's allowed_sans"));
    }
  }
  const std::string cn = c.common_name().empty() ? options_.node_id : c.common_name();
  if (cn.empty() || cn.size() > 64 || !ValidSan(cn)) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kCertRequestInvalid, t->name(),
                  "common_name must be 1-64 characters of a DNS name");
  }
  // A fresh key every time, never reused: the old pending one is replaced.
  ASSIGN_OR_RETURN(KeyPtr key, GenerateKey(t->key_type()));
  ASSIGN_OR_RETURN(std::string csr, MakeCsrPem(key.get(), cn, sans));
  ASSIGN_OR_RETURN(SecureBuffer pem, KeyToPem(key.get()));
  RETURN_IF_ERROR(deps_.fs->MakeDirectory(options_.state_dir + "/certs", 0700));
  RETURN_IF_ERROR(deps_.fs->WriteFileAtomically(PendingPath(t->name()), pem.view(), 0600));
  pending_since_[t->name()] = deps_.clock->Now();
  CommandResult r;
  auto* out = r.mutable_certificate();
  out->set_target(t->name());
  out->set_csr_pem(csr);
  out->set_spki_sha256(SpkiSha256(key.get()));
  out->set_key_type(KeyTypeName(t->key_type()));
  return r;
}

absl::StatusOr<CommandResult> CertificateManager::Install(const nodeward::v1::InstallCertificate& c) {
  ASSIGN_OR_RETURN(const CertificateTarget* t, Target(c.target()));
  const std::string& name = t->name();
  // Everything is checked before anything is written (security rule 8).
  absl::StatusOr<std::vector<CertPtr>> chain = ParseCertificates(c.chain_pem(), kMaxChain);
  if (!chain.ok()) return Refuse(chain.status().code(), ReasonOf(chain.status()), name, chain.status().message());
  std::string bundle_pem = c.ca_bundle_pem();
  if (bundle_pem.empty()) {
    if (t->ca_bundle_file().empty()) {
      return Refuse(absl::StatusCode::kInvalidArgument, reason::kCertChainUntrusted, name,
                    "no CA bundle: the command has none and the target configures none");
    }
    ASSIGN_OR_RETURN(bundle_pem, deps_.fs->ReadFile(t->ca_bundle_file()));
  }
  absl::StatusOr<std::vector<CertPtr>> roots = ParseCertificates(bundle_pem, kMaxBundle);
  if (!roots.ok()) {
    return Refuse(roots.status().code(), ReasonOf(roots.status()), name,
                  absl::StrCat("CA bundle: ", roots.status().message()));
  }
  SecureBuffer buf = SecureBuffer::Create(kMaxPendingKeyBytes).value();
  absl::StatusOr<size_t> n = deps_.fs->ReadFileInto(PendingPath(name), reinterpret_cast<char*>(buf.data()),
                                                   buf.size());
  if (absl::IsNotFound(n.status())) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertNoPendingKey, name,
                  "no pending key: send RequestCertificate first (or it was installed already)");
  }
  if (!n.ok()) return n.status();
  ASSIGN_OR_RETURN(KeyPtr key, KeyFromPem(absl::string_view(reinterpret_cast<char*>(buf.data()), *n)));
  X509* leaf = (*chain)[0].get();
  if (EVP_PKEY_eq(X509_get0_pubkey(leaf), key.get()) != 1) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kCertKeyMismatch, name,
                  absl::StrCat("the leaf's key (", SpkiSha256(X509_get0_pubkey(leaf)).substr(0, 16),
                               "...) is not the pending key (", SpkiSha256(key.get()).substr(0, 16),
                               "...)"));
  }
  const CertFacts facts = FactsOf(leaf);
  const absl::Time now = deps_.clock->Now();
  if (facts.not_before > now + options_.clock_skew) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertNotYetValid, name,
                  absl::StrCat("not valid before ", absl::FormatTime(facts.not_before),
                               ", beyond the clock skew of ", absl::FormatDuration(options_.clock_skew)));
  }
  if (facts.not_after <= now) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertExpired, name,
                  absl::StrCat("expired at ", absl::FormatTime(facts.not_after)));
  }
  const std::set<std::string> allowed(t->allowed_sans().begin(), t->allowed_sans().end());
  if (facts.sans.empty()) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kCertSanNotAllowed, name,
                  "the leaf has no subjectAltName");
  }
  for (const std::string& s : facts.sans) {
    if (!ValidSan(s) || (!allowed.empty() && allowed.count(s) == 0)) {
      return Refuse(absl::StatusCode::kInvalidArgument, reason::kCertSanNotAllowed, name,
                    absl::StrCat("SAN '", s.substr(0, 64), "' is not in the target's allowed_sans"));
    }
  }
  if (absl::Status v = VerifyChain(*chain, *roots, std::max(now, facts.not_before), t->usage());
      !v.ok()) {
    return Refuse(v.code(), ReasonOf(v), name, v.message());
  }
  ASSIGN_OR_RETURN(const uint32_t current, CurrentVersion(*t));

  ASSIGN_OR_RETURN(SecureBuffer key_pem, KeyToPem(key.get()));
  ASSIGN_OR_RETURN(const uint32_t next,
                   Commit(*t, current, key_pem.view(), c.chain_pem(), bundle_pem, facts.spki_sha256));
  // Done: the pending key is used up.
  (void)deps_.fs->RemoveFile(PendingPath(name));
  pending_since_.erase(name);
  CommandResult r;
  auto* out = r.mutable_certificate();
  out->set_target(name);
  out->set_spki_sha256(facts.spki_sha256);
  out->set_version(next);
  *out->mutable_not_before() = ToTimestamp(facts.not_before);
  *out->mutable_not_after() = ToTimestamp(facts.not_after);
  out->set_key_type(KeyTypeName(t->key_type()));
  return r;
}

absl::StatusOr<uint32_t> CertificateManager::Commit(const CertificateTarget& t, uint32_t current,
                                                   absl::string_view key_pem,
                                                   absl::string_view chain_pem,
                                                   absl::string_view bundle_pem,
                                                   const std::string& spki) {
  const std::string& name = t.name();
  // A new version, every file durable, then one atomic swap.
  const uint32_t next = current + 1;
  const std::string dir = VersionDir(t, next);
  // v<next> may be left from a crash before the swap (reused), but it is
  // never followed somewhere else.
  if (absl::StatusOr<std::string> planted = deps_.fs->ReadSymlink(dir); planted.ok()) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertTargetForeign, name,
                  absl::StrCat(dir, " is a symlink (to ", planted->substr(0, 128),
                               "), not the agent's version directory; not touched"));
  }
  RETURN_IF_ERROR(deps_.fs->MakeDirectory(dir, 0755));
  RETURN_IF_ERROR(deps_.fs->WriteFileAtomically(dir + "/key.pem", key_pem,
                                                t.key_mode() == 0 ? 0600 : t.key_mode()));
  if (!t.key_group().empty()) {
    if (absl::Status g = deps_.fs->ChangeGroup(dir + "/key.pem", t.key_group()); !g.ok()) {
      return Refuse(g.code(), reason::kCertStoreFailed, name,
                    absl::StrCat("key_group ", t.key_group(), ": ", g.message(),
                                 absl::IsPermissionDenied(g) ? " (the unit needs CAP_CHOWN)" : ""));
    }
  }
  RETURN_IF_ERROR(deps_.fs->WriteFileAtomically(dir + "/chain.pem", chain_pem, 0644));
  RETURN_IF_ERROR(deps_.fs->WriteFileAtomically(dir + "/ca.pem", bundle_pem, 0644));
  RETURN_IF_ERROR(deps_.fs->ReplaceSymlink(t.directory() + "/current", absl::StrCat("v", next)));
  // The service takes it, or the previous version comes back.
  if (absl::Status reloaded = RunReload(t, spki); !reloaded.ok()) {
    std::string what = absl::StrCat("v", next, " installed but ", reloaded.message());
    if (current > 0) {
      absl::Status back =
          deps_.fs->ReplaceSymlink(t.directory() + "/current", absl::StrCat("v", current));
      absl::Status again = back.ok() ? RunReload(t, SpkiOf(t, current)) : back;
      absl::StrAppend(&what, "; rolled back to v", current,
                      again.ok() ? " and reloaded" : absl::StrCat(", whose reload failed too: ",
                                                                  again.message()));
    } else {
      absl::StrAppend(&what, "; no previous version to roll back to");
    }
    reload_error_[name] = what;
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertReloadFailed, name, what);
  }
  reload_error_.erase(name);
  if (next > 2) {  // the version before the previous goes
    const std::string old = VersionDir(t, next - 2);
    for (const char* f : {"/key.pem", "/chain.pem", "/ca.pem"}) (void)deps_.fs->RemoveFile(old + f);
    (void)deps_.fs->RemoveDirectory(old);
  }
  return next;
}

absl::StatusOr<CommandResult> CertificateManager::UpdateBundle(
    const nodeward::v1::UpdateCaBundle& c) {
  ASSIGN_OR_RETURN(const CertificateTarget* t, Target(c.target()));
  const std::string& name = t->name();
  absl::StatusOr<std::vector<CertPtr>> roots = ParseCertificates(c.ca_bundle_pem(), kMaxBundle);
  if (!roots.ok()) {
    return Refuse(roots.status().code(), ReasonOf(roots.status()), name,
                  absl::StrCat("CA bundle: ", roots.status().message()));
  }
  ASSIGN_OR_RETURN(const uint32_t current, CurrentVersion(*t));
  if (current == 0) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertNothingInstalled, name,
                  "no version installed: a bundle comes with InstallCertificate");
  }
  const std::string dir = VersionDir(*t, current);
  ASSIGN_OR_RETURN(std::string chain_pem, deps_.fs->ReadFile(dir + "/chain.pem"));
  ASSIGN_OR_RETURN(std::vector<CertPtr> chain, ParseCertificates(chain_pem, kMaxChain));
  // Threat 46: a bundle may gain CAs before the leaves move, never lose the
  // one the certificate in force chains to.
  const absl::Time now = deps_.clock->Now();
  const CertFacts facts = FactsOf(chain[0].get());
  if (absl::Status v = VerifyChain(chain, *roots, std::max(now, facts.not_before), t->usage());
      !v.ok()) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertCaDropsCurrent, name,
                  absl::StrCat("the certificate in force (v", current,
                               ") does not verify to the new bundle: ", v.message()));
  }
  SecureBuffer key = SecureBuffer::Create(kMaxPendingKeyBytes).value();
  absl::StatusOr<size_t> n =
      deps_.fs->ReadFileInto(dir + "/key.pem", reinterpret_cast<char*>(key.data()), key.size());
  if (!n.ok()) return n.status();
  ASSIGN_OR_RETURN(const uint32_t next,
                   Commit(*t, current, absl::string_view(reinterpret_cast<char*>(key.data()), *n),
                          chain_pem, c.ca_bundle_pem(), facts.spki_sha256));
  CommandResult r;
  auto* out = r.mutable_certificate();
  out->set_target(name);
  out->set_spki_sha256(facts.spki_sha256);
  out->set_version(next);
  *out->mutable_not_before() = ToTimestamp(facts.not_before);
  *out->mutable_not_after() = ToTimestamp(facts.not_after);
  return r;
}

std::vector<CertificateHealth> CertificateManager::Status() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = deps_.clock->Now();
  std::vector<CertificateHealth> out;
  for (const CertificateTarget& t : options_.targets) {
    CertificateHealth h;
    h.set_target(t.name());
    auto since = pending_since_.find(t.name());
    const bool pending = deps_.fs->FileSize(PendingPath(t.name())).ok();
    h.set_pending(pending);
    if (pending && since != pending_since_.end()) *h.mutable_pending_since() = ToTimestamp(since->second);
    absl::StatusOr<uint32_t> v = CurrentVersion(t);
    if (!v.ok()) {
      h.set_state(CertificateHealth::INVALID);
      h.set_error(std::string(v.status().message()));
    } else if (*v == 0) {
      h.set_state(CertificateHealth::NONE);
    } else {
      h.set_version(*v);
      absl::StatusOr<std::string> pem = deps_.fs->ReadFile(VersionDir(t, *v) + "/chain.pem");
      absl::StatusOr<std::vector<CertPtr>> chain =
          pem.ok() ? ParseCertificates(*pem, kMaxChain) : absl::StatusOr<std::vector<CertPtr>>(pem.status());
      if (!chain.ok()) {
        h.set_state(CertificateHealth::INVALID);
        h.set_error(absl::StrCat("read v", *v, "/chain.pem: ", chain.status().message()));
      } else {
        const CertFacts f = FactsOf((*chain)[0].get());
        const absl::Time due = RenewalDue(f.not_before, f.not_after, options_.node_id, t.name());
        *h.mutable_not_before() = ToTimestamp(f.not_before);
        *h.mutable_not_after() = ToTimestamp(f.not_after);
        *h.mutable_renewal_due_at() = ToTimestamp(due);
        h.set_spki_sha256(f.spki_sha256);
        h.set_subject(f.subject);
        h.set_issuer(f.issuer);
        for (const std::string& s : f.sans) h.add_sans(s);
        const absl::Duration life = f.not_after - f.not_before;
        if (now >= f.not_after) {
          h.set_state(CertificateHealth::EXPIRED);
        } else if (f.not_after - now < life / 10) {
          h.set_state(CertificateHealth::EXPIRING);
        } else if (now >= due) {
          h.set_state(CertificateHealth::RENEWAL_DUE);
        } else {
          h.set_state(CertificateHealth::OK);
        }
      }
    }
    auto failed = reload_error_.find(t.name());
    if (failed != reload_error_.end()) {
      h.set_reload_error(failed->second);
      if (h.state() != CertificateHealth::INVALID) h.set_state(CertificateHealth::RELOAD_FAILED);
    }
    out.push_back(std::move(h));
  }
  if (!options_.client_ca_file.empty()) out.push_back(ClientCaStatus(now));
  return out;
}

std::string CertificateManager::SpkiOf(const CertificateTarget& t, uint32_t v) {
  absl::StatusOr<std::string> pem = deps_.fs->ReadFile(VersionDir(t, v) + "/chain.pem");
  if (!pem.ok()) return "";
  absl::StatusOr<std::vector<CertPtr>> chain = ParseCertificates(*pem, kMaxChain);
  return chain.ok() ? FactsOf((*chain)[0].get()).spki_sha256 : "";
}

absl::Status CertificateManager::RunReload(const CertificateTarget& t, const std::string& spki) {
  const nodeward::v1::ReloadAction& a = t.reload();
  if (a.how() == nodeward::v1::ReloadAction::AGENT_IDENTITY) {
    // gRPC's certificate provider re-reads the files on its own schedule;
    // what counts is what a new handshake gets.
    const absl::Time deadline = deps_.clock->Now() + absl::Seconds(3);
    std::string last = "no handshake";
    while (true) {
      absl::StatusOr<std::string> served = deps_.served_spki();
      if (served.ok() && *served == spki) return absl::OkStatus();
      last = served.ok() ? "its certificate " + served->substr(0, 16) + "..."
                         : std::string(served.status().message());
      if (deps_.clock->Now() >= deadline) break;
      if (deps_.sleep) {
        deps_.sleep(absl::Milliseconds(100));
      } else {
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "the agent's listener does not present ", spki.substr(0, 16), "... within 3 s (", last,
        "; is tls.refresh_interval_seconds 1 and are the tls files under current/?)"));
  }
  if (a.unit().empty()) return absl::OkStatus();
  if (deps_.services == nullptr) return absl::FailedPreconditionError("no service manager");
  if (a.how() == nodeward::v1::ReloadAction::SIGNAL) {
    return deps_.services->Signal(a.unit(), a.signal() == 0 ? 1 : a.signal());
  }
  return deps_.services->Reload(a.unit(), a.how() == nodeward::v1::ReloadAction::RESTART);
}

}  // namespace nodeward::cert
