#include "agent/access/access_manager.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/access/ssh_key.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"
#include "agent/firewall/cidr.h"

namespace nodeward::access {
namespace {

using nodeward::v1::AccessHealth;
using nodeward::v1::AccessSession;
using nodeward::v1::AccessState;
using nodeward::v1::AccessWindow;
using nodeward::v1::CommandResult;

// Unacknowledged findings kept (the oldest go first beyond it; the audit
// chain has every one).
constexpr int kMaxUnauthorised = 256;
constexpr size_t kMaxSourceCidrs = 16;

absl::Status Refuse(absl::StatusCode code, absl::string_view reason_code, absl::string_view why) {
  return WithReason(absl::Status(code, absl::StrCat("operator access: ", why)), reason_code);
}

bool ValidOperator(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

bool Printable(const std::string& s, size_t max) {
  if (s.size() > max) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// `host` (an address as logind reports it) lies in one of `cidrs`.
bool FromAllowed(const std::string& host, const google::protobuf::RepeatedPtrField<std::string>& cidrs) {
  absl::StatusOr<firewall::Cidr> addr = firewall::ParseCidr(host);
  if (!addr.ok()) return false;
  for (const std::string& c : cidrs) {
    absl::StatusOr<firewall::Cidr> net = firewall::ParseCidr(c);
    if (!net.ok() || net->family != addr->family) continue;
    const firewall::Address a = firewall::FirstAddress(*addr);
    if (a >= firewall::FirstAddress(*net) && a <= firewall::LastAddress(*net)) return true;
  }
  return false;
}

std::string Describe(const AccessSession& s) {
  return absl::StrCat("session ", s.session_id(), " user ", s.user(), " (uid ", s.uid(),
                      ") service ", s.service().empty() ? "-" : s.service(), " from ",
                      s.remote_host().empty() ? "local" : s.remote_host(), " tty ",
                      s.tty().empty() ? "-" : s.tty());
}

}  // namespace

AccessManager::AccessManager(AccessDeps deps, AccessOptions options)
    : deps_(std::move(deps)), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<AccessManager>> AccessManager::Create(AccessDeps deps,
                                                                     AccessOptions options) {
  if (options.keys_file.empty() || options.keys_file[0] != '/') {
    return absl::InvalidArgumentError("config: access.authorized_keys_file must be absolute");
  }
  if (!ValidOperator(options.account)) {
    return absl::InvalidArgumentError("config: access.account is not a valid account name");
  }
  std::unique_ptr<AccessManager> m(new AccessManager(std::move(deps), std::move(options)));
  absl::MutexLock lock(&m->mu_);
  absl::StatusOr<std::string> saved = m->deps_.fs->ReadFile(m->options_.state_file);
  if (saved.ok() && !m->state_.ParseFromString(*saved)) {
    // The windows are lost, not the audit: access stays closed until a new
    // grant, and health says why.
    m->state_.Clear();
    m->error_ = absl::StrCat(m->options_.state_file, " is corrupt: every window was dropped");
  } else if (!saved.ok() && !absl::IsNotFound(saved.status())) {
    return absl::Status(saved.status().code(),
                        absl::StrCat("operator access: read ", m->options_.state_file, ": ",
                                     saved.status().message()));
  }
  // Whatever the file holds now, it becomes exactly the windows in force
  // (the first Poll ends and audits those that expired meanwhile).
  RETURN_IF_ERROR(m->deps_.fs->MakeDirectory(
      m->options_.keys_file.substr(0, m->options_.keys_file.find_last_of('/')), 0755));
  RETURN_IF_ERROR(
      m->deps_.fs->WriteFileAtomically(m->options_.keys_file, m->KeysFileContent(), 0644));
  return m;
}

std::string AccessManager::KeysFileContent() const {
  std::string out =
      "# Written by nodeward-agent: operator access windows (docs/operator-access.md).\n"
      "# Edits are undone and reported.\n";
  const absl::Time now = deps_.clock->Now();
  for (int i = 0; i < state_.key_lines_size() && i < state_.windows_size(); ++i) {
    if (FromTimestamp(state_.windows(i).not_after()) > now) {
      absl::StrAppend(&out, state_.key_lines(i), "\n");
    }
  }
  return out;
}

absl::Status AccessManager::SaveState() {
  return deps_.fs->WriteFileAtomically(options_.state_file, state_.SerializeAsString(), 0600);
}

absl::Status AccessManager::Commit(AccessState previous) {
  absl::Status s = SaveState();
  if (s.ok()) s = deps_.fs->WriteFileAtomically(options_.keys_file, KeysFileContent(), 0644);
  if (!s.ok()) {
    state_ = std::move(previous);
    (void)SaveState();
    (void)deps_.fs->WriteFileAtomically(options_.keys_file, KeysFileContent(), 0644);
    return Refuse(s.code(), reason::kAccessStoreFailed, s.message());
  }
  keys_intact_ = true;
  return absl::OkStatus();
}

absl::StatusOr<CommandResult> AccessManager::Apply(const VerifiedCommand& command) {
  absl::MutexLock lock(&mu_);
  const nodeward::v1::Command& c = command.command;
  if (c.has_grant_operator_access()) return Grant(command);
  if (c.has_revoke_operator_access()) return Revoke(c.revoke_operator_access());
  return Acknowledge(c.acknowledge_unauthorised_access());
}

absl::StatusOr<CommandResult> AccessManager::Grant(const VerifiedCommand& command) {
  const nodeward::v1::GrantOperatorAccess& g = command.command.grant_operator_access();
  // Everything is checked before anything is written (security rule 8).
  if (!ValidOperator(g.operator_())) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kAccessRequestInvalid,
                  "operator must be 1-64 characters of [a-z0-9._-]");
  }
  if (g.reason().empty() || g.ticket().empty() || !Printable(g.reason(), 256) ||
      !Printable(g.ticket(), 256) || !Printable(g.customer_approval_ref(), 256)) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kAccessRequestInvalid,
                  "reason and ticket are required: printable, at most 256 bytes each");
  }
  if (g.source_cidrs().empty() || static_cast<size_t>(g.source_cidrs_size()) > kMaxSourceCidrs) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kAccessRequestInvalid,
                  absl::StrCat("source_cidrs: 1 to ", kMaxSourceCidrs, " addresses or CIDRs"));
  }
  std::vector<std::string> from;
  for (const std::string& text : g.source_cidrs()) {
    absl::StatusOr<firewall::Cidr> cidr = firewall::ParseCidr(text);
    if (!cidr.ok() || firewall::IsEverything(*cidr)) {
      return Refuse(absl::StatusCode::kInvalidArgument, reason::kAccessRequestInvalid,
                    absl::StrCat("source_cidrs: '", text.substr(0, 64),
                                 "' is not an address or CIDR (or is everything)"));
    }
    from.push_back(firewall::FormatCidr(*cidr));
  }
  absl::StatusOr<SshPublicKey> key = ParseSshPublicKey(g.ssh_public_key());
  if (!key.ok()) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kAccessKeyInvalid, key.status().message());
  }
  const absl::Time now = deps_.clock->Now();
  const absl::Time not_after = FromTimestamp(g.not_after());
  if (!g.has_not_after() || not_after <= now || not_after - now > options_.max_window) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kAccessRequestInvalid,
                  absl::StrCat("not_after must be in the future and at most ",
                               absl::FormatDuration(options_.max_window), " away"));
  }
  if (absl::StatusOr<uint32_t> uid = deps_.logins->UidOf(options_.account); !uid.ok()) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kAccessAccountMissing,
                  absl::StrCat("the account ", options_.account, " does not exist on this node"));
  }
  AccessState previous = state_;
  // One window per operator: a new grant replaces theirs (new key, new end).
  AccessState next;
  for (int i = 0; i < state_.windows_size(); ++i) {
    if (state_.windows(i).operator_() == g.operator_()) continue;
    *next.add_windows() = state_.windows(i);
    next.add_key_lines(state_.key_lines(i));
  }
  AccessWindow* w = next.add_windows();
  w->set_operator_(g.operator_());
  w->set_key_fingerprint(key->fingerprint);
  for (const std::string& f : from) w->add_source_cidrs(f);
  w->set_reason(g.reason());
  w->set_ticket(g.ticket());
  w->set_customer_approval_ref(g.customer_approval_ref());
  *w->mutable_granted_at() = ToTimestamp(now);
  *w->mutable_not_after() = g.not_after();
  w->set_command_id(command.command.command_id());
  next.add_key_lines(AuthorizedKeyLine(*key, from, not_after, g.operator_(), g.ticket()));
  *next.mutable_unauthorised() = state_.unauthorised();
  next.set_last_event(state_.last_event());
  *next.mutable_seen() = state_.seen();
  state_ = std::move(next);
  RETURN_IF_ERROR(Commit(std::move(previous)));
  CommandResult r;
  auto* out = r.mutable_access();
  out->set_operator_(g.operator_());
  out->set_key_fingerprint(key->fingerprint);
  *out->mutable_not_after() = g.not_after();
  return r;
}

uint32_t AccessManager::TerminateAccount(const std::string& why) {
  absl::StatusOr<uint32_t> uid = deps_.logins->UidOf(options_.account);
  if (!uid.ok()) return 0;
  uint32_t live = 0;
  absl::StatusOr<std::vector<platform::LoginSession>> sessions = deps_.logins->Sessions();
  if (sessions.ok()) {
    for (const auto& s : *sessions) live += s.uid == *uid ? 1 : 0;
  }
  if (live == 0) return 0;
  absl::Status t = deps_.logins->TerminateUser(*uid);
  deps_.audit("access_sessions_terminated",
              absl::StrCat(live, " session(s) of ", options_.account, " ended: ", why,
                           t.ok() ? "" : absl::StrCat(" (logind: ", t.message(), ")")));
  return t.ok() ? live : 0;
}

absl::StatusOr<CommandResult> AccessManager::Revoke(const nodeward::v1::RevokeOperatorAccess& c) {
  AccessState previous = state_;
  AccessState next = state_;
  next.clear_windows();
  next.clear_key_lines();
  bool found = false;
  for (int i = 0; i < state_.windows_size(); ++i) {
    if (state_.windows(i).operator_() == c.operator_()) {
      found = true;
      continue;
    }
    *next.add_windows() = state_.windows(i);
    next.add_key_lines(state_.key_lines(i));
  }
  if (!found) {
    return Refuse(absl::StatusCode::kNotFound, reason::kAccessNotGranted,
                  absl::StrCat("no window for operator '", c.operator_().substr(0, 64), "'"));
  }
  state_ = std::move(next);
  RETURN_IF_ERROR(Commit(std::move(previous)));
  // The key is gone from the file; sessions of the account end with it
  // (one account for all operators: a revoke ends every live one).
  CommandResult r;
  r.mutable_access()->set_operator_(c.operator_());
  r.mutable_access()->set_sessions_terminated(
      TerminateAccount(absl::StrCat("access of ", c.operator_(), " revoked")));
  return r;
}

absl::StatusOr<CommandResult> AccessManager::Acknowledge(
    const nodeward::v1::AcknowledgeUnauthorisedAccess& c) {
  if (c.through_event() == 0 || c.through_event() > state_.last_event()) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kAccessRequestInvalid,
                  absl::StrCat("through_event must be 1..", state_.last_event(),
                               " (the events seen so far)"));
  }
  AccessState previous = state_;
  auto* u = state_.mutable_unauthorised();
  u->erase(std::remove_if(u->begin(), u->end(),
                          [&](const AccessSession& s) { return s.event() <= c.through_event(); }),
           u->end());
  RETURN_IF_ERROR(Commit(std::move(previous)));
  CommandResult r;
  r.mutable_access()->set_unacknowledged(static_cast<uint32_t>(state_.unauthorised_size()));
  return r;
}

void AccessManager::ExpireWindows(absl::Time now) {
  AccessState next = state_;
  next.clear_windows();
  next.clear_key_lines();
  std::vector<std::string> ended;
  for (int i = 0; i < state_.windows_size(); ++i) {
    if (FromTimestamp(state_.windows(i).not_after()) <= now) {
      ended.push_back(state_.windows(i).operator_());
      continue;
    }
    *next.add_windows() = state_.windows(i);
    next.add_key_lines(state_.key_lines(i));
  }
  if (ended.empty()) return;
  state_ = std::move(next);
  for (const std::string& o : ended) {
    deps_.audit("access_expired", absl::StrCat("the access window of ", o, " ended"));
  }
  (void)SaveState();
}

void AccessManager::CheckKeysFile() {
  const std::string want = KeysFileContent();
  absl::StatusOr<std::string> have = deps_.fs->ReadFile(options_.keys_file);
  if (have.ok() && *have == want) return;
  // Someone else wrote the file (a key put in by hand): undo it, report it
  // like a login outside every window until acknowledged.
  AccessSession finding;
  finding.set_event(state_.last_event() + 1);
  state_.set_last_event(finding.event());
  finding.set_service("authorized_keys");
  finding.set_user(options_.account);
  finding.set_session_id(options_.keys_file);
  *finding.mutable_started_at() = ToTimestamp(deps_.clock->Now());
  const std::string what =
      absl::StrCat(options_.keys_file, have.ok() ? " was changed behind the agent"
                                                 : absl::StrCat(" unreadable: ", have.status().message()),
                   "; rewritten from the signed windows");
  finding.set_reason(what);
  *state_.add_unauthorised() = finding;
  deps_.audit("access_keys_tampered", what);
  absl::Status s = deps_.fs->WriteFileAtomically(options_.keys_file, want, 0644);
  keys_intact_ = s.ok();
  if (!s.ok()) error_ = absl::StrCat("repair ", options_.keys_file, ": ", s.message());
  (void)SaveState();
}

const AccessWindow* AccessManager::WindowFor(const platform::LoginSession& s, absl::Time at) const {
  if (s.user != options_.account) return nullptr;
  for (const AccessWindow& w : state_.windows()) {
    if (FromTimestamp(w.granted_at()) <= at && at < FromTimestamp(w.not_after()) &&
        FromAllowed(s.remote_host, w.source_cidrs())) {
      return &w;
    }
  }
  return nullptr;
}

void AccessManager::JudgeSessions(absl::Time now) {
  absl::StatusOr<std::vector<platform::LoginSession>> sessions = deps_.logins->Sessions();
  if (!sessions.ok()) {
    error_ = absl::StrCat("logins cannot be listed, access is not audited: ",
                          sessions.status().message());
    return;
  }
  if (absl::StartsWith(error_, "logins cannot")) error_.clear();
  std::set<std::string> live;
  bool changed = false;
  for (const platform::LoginSession& s : *sessions) {
    if (!s.session_class.empty() && s.session_class != "user") continue;
    live.insert(s.id);
    bool known = false;
    for (const AccessSession& k : state_.seen()) known = known || k.session_id() == s.id;
    if (known) continue;
    changed = true;
    AccessSession a;
    a.set_session_id(s.id);
    a.set_user(s.user);
    a.set_uid(s.uid);
    a.set_remote_host(s.remote_host);
    a.set_service(s.service);
    a.set_tty(s.tty);
    const absl::Time at = s.started_at == absl::InfinitePast() ? now : s.started_at;
    *a.mutable_started_at() = ToTimestamp(at);
    a.set_event(state_.last_event() + 1);
    state_.set_last_event(a.event());
    if (const AccessWindow* w = WindowFor(s, at)) {
      a.set_authorised(true);
      a.set_operator_(w->operator_());
      a.set_reason(w->reason());
      a.set_ticket(w->ticket());
      deps_.audit("access_session_opened",
                  absl::StrCat(Describe(a), " in the window of ", w->operator_(), " (ticket ",
                               w->ticket(), ", reason: ", w->reason(), ")"));
    } else {
      deps_.audit("access_unauthorised", absl::StrCat(Describe(a), ": in no signed window"));
      *state_.add_unauthorised() = a;
      if (state_.unauthorised_size() > kMaxUnauthorised) {
        state_.mutable_unauthorised()->DeleteSubrange(0, 1);
      }
    }
    *state_.add_seen() = a;
  }
  auto* seen = state_.mutable_seen();
  for (auto it = seen->begin(); it != seen->end();) {
    if (live.count(it->session_id()) == 0) {
      deps_.audit("access_session_closed", Describe(*it));
      it = seen->erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed) (void)SaveState();
}

void AccessManager::Poll() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = deps_.clock->Now();
  const int before = state_.windows_size();
  ExpireWindows(now);
  if (state_.windows_size() != before) {
    if (absl::Status s = deps_.fs->WriteFileAtomically(options_.keys_file, KeysFileContent(), 0644);
        !s.ok()) {
      error_ = absl::StrCat("rewrite ", options_.keys_file, ": ", s.message());
    }
    // sshd's expiry-time refuses new logins; the live ones end here.
    if (state_.windows_size() == 0) TerminateAccount("the last access window ended");
  }
  CheckKeysFile();
  JudgeSessions(now);
}

AccessHealth AccessManager::Status() {
  absl::MutexLock lock(&mu_);
  AccessHealth h;
  h.set_enabled(true);
  h.set_account(options_.account);
  *h.mutable_windows() = state_.windows();
  *h.mutable_sessions() = state_.seen();
  *h.mutable_unauthorised() = state_.unauthorised();
  h.set_keys_file_intact(keys_intact_);
  h.set_error(error_);
  return h;
}

}  // namespace nodeward::access
