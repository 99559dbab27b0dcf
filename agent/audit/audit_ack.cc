#include "agent/audit/audit_ack.h"

#include "absl/strings/str_cat.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"

namespace nodeward::audit {
namespace {

using nodeward::v1::CommandResult;

absl::Status Refuse(absl::StatusCode code, absl::string_view reason_code, absl::string_view why) {
  return WithReason(absl::Status(code, absl::StrCat("acknowledge audit: ", why)), reason_code);
}

bool IsHexHash(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AuditAcknowledgements>> AuditAcknowledgements::Create(
    platform::FileSystem* fs, platform::Clock* clock, const AuditLog* log,
    AuditAckOptions options) {
  std::unique_ptr<AuditAcknowledgements> a(
      new AuditAcknowledgements(fs, clock, log, std::move(options)));
  absl::StatusOr<std::string> bytes = fs->ReadFile(a->options_.state_file);
  absl::MutexLock lock(&a->mu_);
  if (bytes.ok()) {
    if (!a->ack_.ParseFromString(*bytes)) {
      return absl::DataLossError(
          absl::StrCat("reading ", a->options_.state_file, ": not an AuditAck"));
    }
  } else if (!absl::IsNotFound(bytes.status())) {
    return bytes.status();
  }
  a->CheckLocked();
  return a;
}

void AuditAcknowledgements::CheckLocked() {
  verdict_ = Verdict::kIntact;
  error_.clear();
  if (log_ == nullptr) {
    verdict_ = Verdict::kUnreadable;
    error_ = "the audit chain could not be opened";
    return;
  }
  if (ack_.records() == 0) return;
  const AuditLog::Head head = log_->DurableHead();
  if (head.records < ack_.records()) {
    verdict_ = Verdict::kTruncated;
    error_ = absl::StrCat("the local chain has ", head.records,
                          " records; the orchestrator acknowledged storing ", ack_.records());
    return;
  }
  absl::StatusOr<std::string> hash = log_->HashAt(ack_.records() - 1);
  if (!hash.ok()) {
    verdict_ = Verdict::kUnreadable;
    error_ = absl::StrCat("reading acknowledged record ", ack_.records() - 1, ": ",
                          hash.status().message());
  } else if (*hash != ack_.hash()) {
    verdict_ = Verdict::kDiverged;
    error_ = absl::StrCat("record ", ack_.records() - 1, " has hash ", *hash,
                          "; the orchestrator acknowledged ", ack_.hash());
  }
}

absl::StatusOr<CommandResult> AuditAcknowledgements::Apply(const VerifiedCommand& command) {
  const nodeward::v1::AcknowledgeAudit& req = command.command.acknowledge_audit();
  if (!IsHexHash(req.hash()) && req.records() != 0) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kAuditAckInvalid,
                  "hash must be 64 lowercase hex digits");
  }
  if (log_ == nullptr) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kAuditUnavailable,
                  "the audit chain could not be opened");
  }
  absl::MutexLock lock(&mu_);
  const AuditLog::Head head = log_->DurableHead();
  if (req.records() > head.records) {
    return Refuse(absl::StatusCode::kOutOfRange, reason::kAuditAckAhead,
                  absl::StrCat(req.records(), " records acknowledged; the chain has ",
                               head.records));
  }
  CommandResult result;
  if (req.records() > 0) {
    absl::StatusOr<std::string> hash = log_->HashAt(req.records() - 1);
    if (!hash.ok()) {
      return Refuse(absl::StatusCode::kFailedPrecondition, reason::kAuditUnavailable,
                    hash.status().message());
    }
    if (*hash != req.hash()) {
      verdict_ = Verdict::kDiverged;
      error_ = absl::StrCat("record ", req.records() - 1, " has hash ", *hash,
                            "; the orchestrator acknowledged ", req.hash());
      return Refuse(absl::StatusCode::kFailedPrecondition, reason::kAuditAckMismatch, error_);
    }
  }
  if (req.records() > ack_.records()) {
    nodeward::v1::AuditAck next;
    next.set_records(req.records());
    next.set_hash(req.hash());
    *next.mutable_time() = ToTimestamp(clock_->Now());
    if (absl::Status s =
            fs_->WriteFileAtomically(options_.state_file, next.SerializeAsString(), 0600);
        !s.ok()) {
      return Refuse(s.code(), reason::kAuditUnavailable,
                    absl::StrCat("writing ", options_.state_file, ": ", s.message()));
    }
    ack_ = std::move(next);
    CheckLocked();
  }
  result.mutable_audit_ack()->set_acknowledged_records(ack_.records());
  result.mutable_audit_ack()->set_head_records(head.records);
  return result;
}

nodeward::v1::AuditHealth AuditAcknowledgements::Health() const {
  nodeward::v1::AuditHealth h;
  absl::MutexLock lock(&mu_);
  if (log_ != nullptr) {
    const AuditLog::Head head = log_->DurableHead();
    h.set_records(head.records);
    h.set_head_hash(head.hash);
    h.set_unacknowledged(head.records > ack_.records() ? head.records - ack_.records() : 0);
  }
  h.set_acknowledged_records(ack_.records());
  h.set_acknowledged_hash(ack_.hash());
  if (ack_.has_time()) *h.mutable_acknowledged_at() = ack_.time();
  h.set_backlog_limit(options_.backlog_limit);
  h.set_error(error_);
  return h;
}

AuditAcknowledgements::Verdict AuditAcknowledgements::verdict() const {
  absl::MutexLock lock(&mu_);
  return verdict_;
}

}  // namespace nodeward::audit
