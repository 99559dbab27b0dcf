#include "agent/command/command_processor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status_macros.h"
#include "agent/common/logging.h"
#include "agent/common/reason.h"
#include "agent/common/time_util.h"

namespace nodeward {
namespace {

using nodeward::v1::CommandResult;
using nodeward::v1::Outcome;

constexpr size_t kRecentCommands = 20;

absl::Status FromOutcome(const Outcome& o) {
  absl::Status s(static_cast<absl::StatusCode>(o.code()), o.message());
  return WithReason(s, o.reason());
}

}  // namespace

CommandProcessor::CommandProcessor(platform::Clock* clock, NodeIdentity identity,
                                   VerifierLimits limits, TrustStorePtr trust,
                                   CommandLedger* ledger, AuditLog* audit, HandlerMap handlers)
    : clock_(clock),
      identity_(std::move(identity)),
      limits_(limits),
      ledger_(ledger),
      audit_(audit),
      handlers_(std::move(handlers)),
      trust_(std::move(trust)) {
  // Counters and the recent list continue from the audit file: a restart
  // does not make "1 applied" out of a node at sequence 10.
  if (audit_ != nullptr) {
    const AuditHistory& h = audit_->history();
    absl::MutexLock lock(&mu_);
    applied_ = h.applied;
    rejected_ = h.rejected;
    replayed_ = h.replayed;
    for (const auto& rc : h.recent) {
      if (recent_.size() < kRecentCommands) recent_.push_back(rc);
    }
  }
}

absl::StatusOr<CommandResult> CommandProcessor::Execute(absl::string_view envelope_bytes,
                                                        const std::string& peer,
                                                        const std::string& peer_chain_pem) {
  {
    absl::MutexLock lock(&mu_);
    if (draining_) {
      return Reject(absl::StatusCode::kUnavailable, reason::kShuttingDown,
                    "the agent is shutting down");
    }
    ++in_flight_;
  }
  const absl::Time received = clock_->Now();
  VerifiedCommand verified;
  RejectionFacts facts;
  bool replayed = false;
  absl::StatusOr<CommandResult> result = Run(envelope_bytes, peer_chain_pem, &verified, &facts, &replayed);
  Finish(verified.command_type.empty() ? nullptr : &verified, facts, peer, result, replayed,
         received);
  if (!result.ok() && !verified.command_type.empty()) {
    // The refusal's CommandResult (the "nodeward-result-bin" trailer) names
    // the command it answers; the transport adds reason and message.
    CommandResult r;
    r.set_command_id(verified.command.command_id());
    r.set_sequence(verified.command.sequence());
    r.set_replayed(replayed);
    absl::Status s = result.status();
    s.SetPayload(kRefusalResultUrl, absl::Cord(r.SerializeAsString()));
    return s;
  }
  return result;
}

absl::StatusOr<CommandResult> CommandProcessor::Run(absl::string_view envelope_bytes,
                                                    const std::string& peer_chain_pem,
                                                    VerifiedCommand* verified,
                                                    RejectionFacts* facts, bool* replayed) {
  const absl::Time now = clock_->Now();  // one fixed "now" for the whole check
  TrustStorePtr trust;
  {
    absl::MutexLock lock(&mu_);
    trust = trust_;
  }
  absl::StatusOr<VerifiedCommand> v = VerifyCommand(envelope_bytes, *trust, identity_, limits_, now, facts);
  if (!v.ok()) return v.status();
  *verified = std::move(v).value();
  verified->peer_chain_pem = peer_chain_pem;

  auto handler = handlers_.find(verified->command_type);
  const CommandLedger::Mode mode = handler != handlers_.end() && !handler->second->ChangesState()
                                       ? CommandLedger::Mode::kPure
                                       : CommandLedger::Mode::kWriteAhead;
  // Fail closed (security rule 5): nothing that changes state runs while
  // its audit record could not be written. Checked before the ledger, so
  // the sequence number is not consumed.
  if (mode == CommandLedger::Mode::kWriteAhead) RETURN_IF_ERROR(AuditWritable());
  absl::StatusOr<CommandLedger::Admission> admission = ledger_->Admit(*verified, now, mode);
  if (!admission.ok()) return admission.status();
  if (admission->replay) {
    *replayed = true;
    const Outcome& o = admission->recorded;
    if (o.code() != 0) return MarkSequenceConsumed(FromOutcome(o));
    CommandResult r;
    if (!r.ParseFromString(o.result())) {
      return Reject(absl::StatusCode::kDataLoss, reason::kStateUnavailable,
                    "recorded result does not parse");
    }
    r.set_replayed(true);
    return r;
  }

  // Journaled: from here on the command has an outcome, whatever happens.
  absl::StatusOr<CommandResult> applied;
  const absl::Time apply_start = clock_->Now();
  if (handler == handlers_.end()) {
    applied = Reject(absl::StatusCode::kUnimplemented, reason::kCommandTypeUnhandled,
                     absl::StrCat("no handler for '", verified->command_type, "'"));
  } else {
    applied = handler->second->Apply(*verified);
  }
  Outcome o;
  *o.mutable_time() = ToTimestamp(clock_->Now());
  if (applied.ok()) {
    applied->set_command_id(verified->command.command_id());
    applied->set_sequence(verified->command.sequence());
    *applied->mutable_applied_at() = o.time();
    if (clock_->Now() > apply_start) {
      applied->set_apply_duration_ms(
          static_cast<uint64_t>(absl::ToInt64Milliseconds(clock_->Now() - apply_start)));
    }
    o.set_result(applied->SerializeAsString());
  } else {
    std::string why = ReasonOf(applied.status());
    if (why.empty()) applied = WithReason(applied.status(), reason::kApplyFailed);
    o.set_code(static_cast<int>(applied.status().code()));
    o.set_reason(ReasonOf(applied.status()));
    o.set_message(std::string(applied.status().message()));
  }
  absl::Status recorded = ledger_->RecordOutcome(verified->command.command_id(), o);
  if (!recorded.ok()) {
    return MarkSequenceConsumed(
        Reject(absl::StatusCode::kUnavailable, reason::kStateUnavailable,
               absl::StrCat("command was applied but its outcome could not be recorded: ",
                            recorded.message())));
  }
  if (!applied.ok()) return MarkSequenceConsumed(applied.status());
  return applied;
}

void CommandProcessor::Finish(const VerifiedCommand* verified, const RejectionFacts& facts,
                              const std::string& peer,
                              const absl::StatusOr<CommandResult>& result, bool replayed,
                              absl::Time received) {
  nodeward::v1::AuditRecord a;
  const absl::Time now = clock_->Now();
  *a.mutable_time() = ToTimestamp(now);
  if (now > received) a.set_duration_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(now - received)));
  a.set_peer(peer);
  if (verified != nullptr) {
    a.set_command_id(verified->command.command_id());
    a.set_sequence(verified->command.sequence());
    a.set_command_type(verified->command_type);
    for (const auto& k : verified->signer_key_ids) a.add_signer_key_ids(k);
  } else {
    // Unverified claims: recorded as claimed, for forensics only.
    a.set_command_id(facts.command_id);
    a.set_sequence(facts.sequence);
    a.set_command_type(facts.command_type);
    for (const auto& k : facts.claimed_key_ids) a.add_signer_key_ids(k);
  }
  // A rejection before the ledger says nothing was applied; a failure after
  // admission is an applied-and-failed outcome.
  std::string decision;
  if (replayed) {
    decision = "replayed";
  } else if (result.ok()) {
    decision = "applied";
  } else {
    // Admitted and then failed (its sequence number is used up), or refused
    // before the ledger let it in.
    decision = SequenceConsumed(result.status()) ? "failed" : "rejected";
  }
  a.set_decision(decision);
  if (!result.ok()) {
    a.set_reason(ReasonOf(result.status()));
    a.set_message(std::string(result.status().message()));
  }
  absl::Status audited = audit_ == nullptr ? absl::FailedPreconditionError("audit log not open")
                                           : audit_->Append(a);

  std::function<void()> notify;
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (replayed) {
      ++replayed_;
    } else if (result.ok()) {
      ++applied_;
    } else {
      ++rejected_;
    }
    if (!audited.ok()) {
      audit_error_ = std::string(audited.message());
    }
    nodeward::v1::RecentCommand rc;
    rc.set_command_id(a.command_id());
    rc.set_sequence(a.sequence());
    rc.set_command_type(a.command_type());
    rc.set_decision(decision);
    rc.set_reason(a.reason());
    *rc.mutable_time() = a.time();
    recent_.push_front(std::move(rc));
    if (recent_.size() > kRecentCommands) recent_.pop_back();
    notify = on_change_;
  }
  if (!audited.ok()) NW_LOG_ERROR("append audit record: ", audited.message());
  if (notify) notify();
}

absl::Status CommandProcessor::AuditWritable() {
  std::string error;
  {
    absl::MutexLock lock(&mu_);
    if (audit_ == nullptr) error = "audit log not open";
    else error = audit_error_;
  }
  if (error.empty()) return absl::OkStatus();
  if (audit_ != nullptr) {
    // The last write failed (a full disk, an I/O error): try once more with
    // a record that says so; success clears the condition.
    nodeward::v1::AuditRecord a;
    *a.mutable_time() = ToTimestamp(clock_->Now());
    a.set_event("audit_resumed");
    a.set_message(absl::StrCat("audit writes work again after: ", error));
    if (audit_->Append(a).ok()) {
      absl::MutexLock lock(&mu_);
      audit_error_.clear();
      return absl::OkStatus();
    }
  }
  return Reject(absl::StatusCode::kUnavailable, reason::kAuditUnavailable,
                absl::StrCat("state-changing commands are refused while the audit log cannot be "
                             "written: ", error));
}

void CommandProcessor::RecordEarlyRefusal(const std::string& peer, const std::string& rpc,
                                          const absl::Status& refusal,
                                          const RejectionFacts& facts) {
  FlushRefusalSummary();
  const absl::Time now = clock_->Now();
  bool audit_it = false;
  {
    absl::MutexLock lock(&refusal_mu_);
    if (refusals_.start == absl::InfinitePast()) refusals_.start = now;
    if (refusals_.audited < kRefusalsAuditedPerMinute) {
      ++refusals_.audited;
      audit_it = true;
    } else {
      ++refusals_.suppressed;
      ++refusals_.reasons[ReasonOf(refusal)];
      if (refusals_.peers.size() < 8 || refusals_.peers.count(peer) != 0) ++refusals_.peers[peer];
    }
  }
  {
    absl::MutexLock lock(&mu_);
    ++rejected_;
  }
  if (!audit_it) return;
  nodeward::v1::AuditRecord a;
  *a.mutable_time() = ToTimestamp(now);
  a.set_peer(peer);
  a.set_rpc(rpc);
  a.set_command_id(facts.command_id);
  a.set_sequence(facts.sequence);
  a.set_command_type(facts.command_type);
  for (const auto& k : facts.claimed_key_ids) a.add_signer_key_ids(k);
  a.set_decision("rejected");
  a.set_reason(ReasonOf(refusal));
  a.set_message(std::string(refusal.message()));
  absl::Status s = audit_ == nullptr ? absl::FailedPreconditionError("audit log not open")
                                     : audit_->Append(a);
  if (!s.ok()) {
    NW_LOG_ERROR("append audit record: ", s.message());
    absl::MutexLock lock(&mu_);
    audit_error_ = std::string(s.message());
  }
}

void CommandProcessor::FlushRefusalSummary() {
  const absl::Time now = clock_->Now();
  RefusalWindow ended;
  {
    absl::MutexLock lock(&refusal_mu_);
    if (refusals_.start == absl::InfinitePast() || now - refusals_.start < absl::Minutes(1)) return;
    ended = std::move(refusals_);
    refusals_ = RefusalWindow();
  }
  if (ended.suppressed == 0) return;
  std::vector<std::string> reasons, peers;
  for (const auto& [r, n] : ended.reasons) reasons.push_back(absl::StrCat(r, " x", n));
  for (const auto& [p, n] : ended.peers) peers.push_back(absl::StrCat(p, " x", n));
  AuditEvent("refusals_summarised",
             absl::StrCat(ended.suppressed, " more refusals before the pipeline in the minute from ",
                          absl::FormatTime(absl::RFC3339_sec, ended.start, absl::UTCTimeZone()),
                          " (", kRefusalsAuditedPerMinute, " were recorded one by one): ",
                          absl::StrJoin(reasons, ", "), "; peers: ", absl::StrJoin(peers, ", ")));
}

void CommandProcessor::ReplaceTrust(TrustStorePtr trust) {
  absl::MutexLock lock(&mu_);
  trust_ = std::move(trust);
}

void CommandProcessor::Drain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  mu_.Await(absl::Condition(+[](int* n) { return *n == 0; }, &in_flight_));
}

ProcessorStats CommandProcessor::Stats() const {
  ProcessorStats s;
  s.high_water_mark = ledger_->high_water_mark();
  absl::Status ledger_health = ledger_->health();
  if (!ledger_health.ok()) s.state_error = std::string(ledger_health.message());
  absl::MutexLock lock(&mu_);
  if (audit_ == nullptr) s.audit_error = "audit log not open";
  if (!audit_error_.empty()) s.audit_error = audit_error_;
  s.applied = applied_;
  s.rejected = rejected_;
  s.replayed = replayed_;
  s.draining = draining_;
  s.recent = recent_;
  return s;
}

void CommandProcessor::SetOnChange(std::function<void()> on_change) {
  absl::MutexLock lock(&mu_);
  on_change_ = std::move(on_change);
}

void CommandProcessor::AuditEvent(const std::string& event, const std::string& message) {
  if (audit_ == nullptr) return;
  nodeward::v1::AuditRecord a;
  *a.mutable_time() = ToTimestamp(clock_->Now());
  a.set_event(event);
  a.set_message(message);
  absl::Status s = audit_->Append(a);
  if (!s.ok()) {
    NW_LOG_ERROR("append audit event: ", s.message());
    absl::MutexLock lock(&mu_);
    audit_error_ = std::string(s.message());
  }
}

}  // namespace nodeward
