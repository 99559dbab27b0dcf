#ifndef NODEWARD_AGENT_COMMAND_COMMAND_PROCESSOR_H_
#define NODEWARD_AGENT_COMMAND_COMMAND_PROCESSOR_H_

#include <deque>
#include <map>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/command/command_handler.h"
#include "agent/command/trust_store.h"
#include "agent/command/verifier.h"
#include "agent/state/audit_log.h"
#include "agent/state/command_ledger.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/state.pb.h"
#include "platform/clock.h"

namespace nodeward {

// What health and status read. A copy, taken under the processor's lock.
struct ProcessorStats {
  uint64_t high_water_mark = 0;
  uint64_t applied = 0;
  uint64_t rejected = 0;
  uint64_t replayed = 0;
  bool draining = false;
  // Why the ledger cannot be used / the audit chain cannot be written ("":
  // it can).
  std::string state_error;
  std::string audit_error;
  std::deque<nodeward::v1::RecentCommand> recent;
};

// The whole pipeline for one SignedCommand: verify -> ledger admit (sequence,
// dedupe, durable intent) -> apply -> durable outcome -> audit. Thread-safe;
// Execute may run on many gRPC threads at once.
class CommandProcessor {
 public:
  CommandProcessor(platform::Clock* clock, NodeIdentity identity, VerifierLimits limits,
                   TrustStorePtr trust, CommandLedger* ledger, AuditLog* audit,
                   HandlerMap handlers);

  // Returns the result, or a status carrying a reason (ReasonOf). `peer` is
  // the transport identity, for the audit record only; `peer_chain_pem` its
  // certificate chain (VerifiedCommand::peer_chain_pem).
  absl::StatusOr<nodeward::v1::CommandResult> Execute(absl::string_view envelope_bytes,
                                                      const std::string& peer,
                                                      const std::string& peer_chain_pem = "");

  // Swaps the trust store (SIGHUP). Commands in flight finish on the old one.
  void ReplaceTrust(TrustStorePtr trust);
  // New commands get SHUTTING_DOWN; waits until those in flight finish.
  void Drain();

  ProcessorStats Stats() const;
  // Called after every command with no lock held (health push).
  void SetOnChange(std::function<void()> on_change);
  // Records a non-command event (startup, reload, shutdown) in the audit chain.
  void AuditEvent(const std::string& event, const std::string& message);

  // A refusal made before the pipeline (PEER_NOT_ALLOWED, the wire checks,
  // AGENT_BUSY) for `rpc`: counted as rejected and audited with the peer's
  // identity, one record each for the first kRefusalsAuditedPerMinute in a
  // minute; beyond that only counted, and one `refusals_summarised` record
  // says how many, which reasons and which peers, when the minute is over.
  void RecordEarlyRefusal(const std::string& peer, const std::string& rpc,
                          const absl::Status& refusal, const RejectionFacts& facts);
  // Writes the summary of a minute that has ended (called by the main loop
  // tick and by the next refusal).
  void FlushRefusalSummary();
  static constexpr int kRefusalsAuditedPerMinute = 30;

 private:
  absl::StatusOr<nodeward::v1::CommandResult> Run(absl::string_view envelope_bytes,
                                                  const std::string& peer_chain_pem,
                                                  VerifiedCommand* verified, RejectionFacts* facts,
                                                  bool* replayed);
  // AUDIT_UNAVAILABLE unless the audit log can take the next record
  // (retries a log whose last write failed with one `audit_resumed` record).
  absl::Status AuditWritable();
  void Finish(const VerifiedCommand* verified, const RejectionFacts& facts,
              const std::string& peer,
              const absl::StatusOr<nodeward::v1::CommandResult>& result, bool replayed,
              absl::Time received);

  platform::Clock* const clock_;
  const NodeIdentity identity_;
  const VerifierLimits limits_;
  CommandLedger* const ledger_;
  AuditLog* const audit_;
  const HandlerMap handlers_;

  mutable absl::Mutex mu_;
  TrustStorePtr trust_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t applied_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t replayed_ ABSL_GUARDED_BY(mu_) = 0;
  std::string audit_error_ ABSL_GUARDED_BY(mu_);
  std::deque<nodeward::v1::RecentCommand> recent_ ABSL_GUARDED_BY(mu_);
  std::function<void()> on_change_ ABSL_GUARDED_BY(mu_);

  // Early refusals in the current minute.
  struct RefusalWindow {
    absl::Time start = absl::InfinitePast();
    int audited = 0;
    uint64_t suppressed = 0;
    std::map<std::string, uint64_t> reasons;
    std::map<std::string, uint64_t> peers;
  };
  absl::Mutex refusal_mu_ ABSL_ACQUIRED_AFTER(mu_);
  RefusalWindow refusals_ ABSL_GUARDED_BY(refusal_mu_);
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMAND_COMMAND_PROCESSOR_H_
