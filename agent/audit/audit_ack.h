#ifndef NODEWARD_AGENT_AUDIT_AUDIT_ACK_H_
#define NODEWARD_AGENT_AUDIT_AUDIT_ACK_H_

// What the orchestrator acknowledged storing of the audit chain
// (AcknowledgeAudit, docs/audit.md), checked against the local chain: the
// chain kept on the VM can be cut or rewritten by root, the copy the
// orchestrator stored cannot, so the acknowledged head shows from outside
// whether the local chain still is the one that was shipped.

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/command/command_handler.h"
#include "agent/state/audit_log.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/state.pb.h"
#include "platform/clock.h"
#include "platform/file_system.h"

namespace nodeward::audit {

struct AuditAckOptions {
  std::string state_file;  // <state_dir>/audit_ack.pb
  uint64_t backlog_limit = 100000;
};

class AuditAcknowledgements final : public CommandHandler {
 public:
  // `log` null: the chain could not be opened (the agent runs degraded);
  // every acknowledgement is refused AUDIT_UNAVAILABLE. Checks the stored
  // acknowledgement against the chain at once (Health().error).
  static absl::StatusOr<std::unique_ptr<AuditAcknowledgements>> Create(
      platform::FileSystem* fs, platform::Clock* clock, const AuditLog* log,
      AuditAckOptions options);

  // AcknowledgeAudit: OUT_OF_RANGE AUDIT_ACK_AHEAD past the durable head;
  // FAILED_PRECONDITION AUDIT_ACK_MISMATCH when the hash is not the chain's
  // (and the divergence shows in health from then on). An acknowledgement at
  // or below the one recorded changes nothing (a retry, or a lagging copy).
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;

  // records, hashes, backlog and, when the chain is not the acknowledged
  // one, why (AUDIT_TRUNCATED / AUDIT_DIVERGED: see truncated()).
  nodeward::v1::AuditHealth Health() const;

  enum class Verdict { kIntact, kTruncated, kDiverged, kUnreadable };
  Verdict verdict() const;

 private:
  AuditAcknowledgements(platform::FileSystem* fs, platform::Clock* clock, const AuditLog* log,
                        AuditAckOptions options)
      : fs_(fs), clock_(clock), log_(log), options_(std::move(options)) {}
  // The stored acknowledgement against the chain as it is now.
  void CheckLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  platform::FileSystem* const fs_;
  platform::Clock* const clock_;
  const AuditLog* const log_;
  const AuditAckOptions options_;
  mutable absl::Mutex mu_;
  nodeward::v1::AuditAck ack_ ABSL_GUARDED_BY(mu_);
  Verdict verdict_ ABSL_GUARDED_BY(mu_) = Verdict::kIntact;
  std::string error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward::audit

#endif  // NODEWARD_AGENT_AUDIT_AUDIT_ACK_H_
