#ifndef NODEWARD_AGENT_STATE_COMMAND_LEDGER_H_
#define NODEWARD_AGENT_STATE_COMMAND_LEDGER_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/command/verifier.h"
#include "nodeward/v1/state.pb.h"
#include "platform/file_system.h"

namespace nodeward {

struct LedgerOptions {
  std::string dir;
  uint64_t max_sequence_jump = 1u << 20;
  // See LimitsConfig.sequence_window.
  uint32_t sequence_window = 0;
  // Compact the journal into the snapshot after this many records.
  size_t compact_after_records = 4096;
  // Finished entries kept by a compaction (newest by sequence), for replay
  // answers; unfinished ones and those inside the sequence window are always kept.
  size_t retain_entries = 1024;
};

// The durable half of the pipeline: sequence high-water mark, command-id
// dedupe, write-ahead intent before apply, outcome after. Files in `dir`:
//   snapshot       LedgerSnapshot, replaced atomically on compaction
//   journal.<gen>  frames of JournalRecord appended since that snapshot
// Appends from concurrent commands share one fdatasync (group commit).
// A state it cannot read or write makes it refuse every command with
// STATE_UNAVAILABLE until restart; it never resets the high-water mark.
// Thread-safe.
class CommandLedger {
 public:
  // Never fails: a bad state dir yields a ledger whose health() says why.
  static std::unique_ptr<CommandLedger> Open(platform::FileSystem* fs, LedgerOptions options,
                                             absl::Time now);

  struct Admission {
    // An exact replay of a finished command: `recorded` is its outcome and
    // nothing may be applied.
    bool replay = false;
    nodeward::v1::Outcome recorded;
  };

  // How a command is journaled. kWriteAhead: a durable intent before apply,
  // the outcome after (two syncs, shared with concurrent commands). kPure, for
  // commands that change nothing on the VM (Ping, dry runs): sequence and id
  // are reserved in memory and intent and outcome are made durable together
  // after the command ran (one sync); a crash before that loses a command
  // that was never acknowledged and changed nothing.
  enum class Mode { kWriteAhead, kPure };

  // Sequence check, dedupe, then (kWriteAhead) a durable intent. Errors (all with reasons):
  // SEQUENCE_REPLAYED, COMMAND_ID_REUSED (ALREADY_EXISTS), COMMAND_IN_PROGRESS
  // (ABORTED), SEQUENCE_JUMP_TOO_LARGE (OUT_OF_RANGE), STATE_UNAVAILABLE
  // (UNAVAILABLE). On error nothing is recorded and the command must not run.
  absl::StatusOr<Admission> Admit(const VerifiedCommand& command, absl::Time now,
                                  Mode mode = Mode::kWriteAhead);

  // Durably records the outcome of an admitted command. STATE_UNAVAILABLE on
  // failure (the ledger then refuses further commands).
  absl::Status RecordOutcome(const std::string& command_id, const nodeward::v1::Outcome& outcome);

  uint64_t high_water_mark() const;
  // OK, or why commands are refused.
  absl::Status health() const;
  // Commands found in doubt (intent, no outcome) when the ledger was opened.
  std::vector<std::string> recovered_in_doubt() const;

 private:
  CommandLedger(platform::FileSystem* fs, LedgerOptions options);
  absl::Status Load(absl::Time now);
  absl::Status ApplyRecord(const nodeward::v1::JournalRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends one record; the returned offset is durable after WaitDurable.
  absl::StatusOr<uint64_t> AppendLocked(const nodeward::v1::JournalRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WaitDurable(uint64_t offset) ABSL_LOCKS_EXCLUDED(mu_);
  void MaybeCompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BreakLocked(const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Undoes the in-memory admission of a command whose records never became
  // durable (the ledger is broken by then; this keeps status truthful).
  void ForgetLocked(const std::string& id, uint64_t seq, uint64_t prev_mark)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string JournalPath(uint64_t generation) const;

  platform::FileSystem* const fs_;
  const LedgerOptions options_;

  mutable absl::Mutex mu_;
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  uint64_t high_water_mark_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 1;
  platform::AppendableFilePtr journal_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, nodeward::v1::LedgerEntry> entries_ ABSL_GUARDED_BY(mu_);
  // Sequences used within the window below the high-water mark.
  std::set<uint64_t> used_sequences_ ABSL_GUARDED_BY(mu_);
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  size_t records_since_snapshot_ ABSL_GUARDED_BY(mu_) = 0;
  // Frames waiting for the next sync leader to write them.
  std::string batch_ ABSL_GUARDED_BY(mu_);
  // Logical byte offsets over all journal generations.
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t synced_ ABSL_GUARDED_BY(mu_) = 0;
  bool syncing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> recovered_in_doubt_ ABSL_GUARDED_BY(mu_);
  // kPure commands admitted whose intent is not yet written.
  // Value: the high-water mark before it was admitted, restored if its write
  // fails so status never reports a sequence that is not on disk.
  std::map<std::string, uint64_t> unwritten_intents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_STATE_COMMAND_LEDGER_H_
