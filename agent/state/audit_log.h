#ifndef NODEWARD_AGENT_STATE_AUDIT_LOG_H_
#define NODEWARD_AGENT_STATE_AUDIT_LOG_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nodeward/v1/state.pb.h"
#include "platform/file_system.h"

namespace nodeward {

// hex SHA-256(prev_hash || "\n" || ToJsonLine(record with hash cleared)).
std::string AuditRecordHash(const nodeward::v1::AuditRecord& record);

// Append-only, hash-chained audit file: one AuditRecord as protobuf JSON per
// line, each naming the hash of the one before. Each line is written with
// one write(2) and fdatasync'd before Append returns (group commit:
// concurrent appenders share a sync; docs/state.md), so a command's audit
// line is durable before its outcome is returned.
// Thread-safe: the chain order is the order of Append calls.
// What the audit file says about commands before this start: the counters
// and recent-commands list of status and health continue from it instead of
// starting at zero. Early refusals beyond the per-minute audit budget are
// only in summary events and not counted.
struct AuditHistory {
  uint64_t applied = 0;
  uint64_t rejected = 0;  // rejected and failed
  uint64_t replayed = 0;
  std::vector<nodeward::v1::RecentCommand> recent;  // newest first, at most kRecentLimit
  static constexpr size_t kRecentLimit = 20;
};

class AuditLog {
 public:
  // Opens `path`, verifies the existing chain and continues it. A torn or
  // zero-filled last line is cut (durably) and an `audit_tail_cut` record
  // says how many bytes with which hash. A chain broken anywhere else is
  // FAILED_PRECONDITION (the agent starts degraded, refuses state-changing
  // commands, and does not extend a chain it cannot vouch for).
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(platform::FileSystem* fs,
                                                        const std::string& path);

  // Fills index, prev_hash and hash, then appends.
  absl::Status Append(nodeward::v1::AuditRecord record);
  // fdatasync (shutdown).
  absl::Status Sync();
  // Called with each record once it is durable (the journal's structured
  // entry per command). Set before the first Append.
  void set_observer(std::function<void(const nodeward::v1::AuditRecord&)> observer) {
    observer_ = std::move(observer);
  }
  // Called (no argument, outside every lock) after records became durable:
  // WatchAudit streams wake on it. Set before the first Append.
  void set_durable_listener(std::function<void()> listener) { listener_ = std::move(listener); }

  // The durable chain: records on disk and fdatasync'd, and the last one's
  // hash (64 zeros for none).
  struct Head {
    uint64_t records = 0;
    std::string hash;
  };
  Head DurableHead() const;
  // Durable records from `from` on, at most `max`, in order (none when
  // `from` is at or past the head). The last kRecentKept come from memory;
  // older ones are read back from the file and each checked against its
  // hash and index (DATA_LOSS naming the record when the file was changed).
  absl::StatusOr<std::vector<nodeward::v1::AuditRecord>> Read(uint64_t from, size_t max) const;
  // The hash of durable record `index` (OUT_OF_RANGE past the head).
  absl::StatusOr<std::string> HashAt(uint64_t index) const;
  static constexpr size_t kRecentKept = 4096;

  // What Open cut from the tail ("" if nothing).
  const std::string& cut_tail() const { return cut_tail_; }
  // The commands in the file as Open found it.
  const AuditHistory& history() const { return history_; }

 private:
  AuditLog(platform::FileSystem* fs, std::string path, platform::AppendableFilePtr file,
           uint64_t next_index, std::string last_hash);
  absl::Status AppendDurably(nodeward::v1::AuditRecord* record);
  platform::FileSystem* const fs_;
  const std::string path_;
  std::function<void(const nodeward::v1::AuditRecord&)> observer_;
  std::function<void()> listener_;
  mutable absl::Mutex mu_;
  // Records appended by this process, newest last (at most kRecentKept):
  // recent_[i] has index recent_first_ + i. Those below durable_records_
  // are durable.
  std::deque<nodeward::v1::AuditRecord> recent_ ABSL_GUARDED_BY(mu_);
  uint64_t recent_first_ ABSL_GUARDED_BY(mu_);
  uint64_t durable_records_ ABSL_GUARDED_BY(mu_);
  std::string durable_hash_ ABSL_GUARDED_BY(mu_);
  // Line starts in the file of records below recent_first_ that Open found
  // (index -> byte offset), for reading them back.
  std::vector<uint64_t> offsets_ ABSL_GUARDED_BY(mu_);
  uint64_t recent_offset_ ABSL_GUARDED_BY(mu_) = 0;  // of recent_.front()
  platform::AppendableFilePtr file_ ABSL_GUARDED_BY(mu_);
  uint64_t next_index_ ABSL_GUARDED_BY(mu_);
  std::string last_hash_ ABSL_GUARDED_BY(mu_);
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  uint64_t appended_ ABSL_GUARDED_BY(mu_) = 0;  // lines written by this process
  uint64_t synced_ ABSL_GUARDED_BY(mu_) = 0;    // of those, known durable
  absl::Mutex sync_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one fdatasync at a time
  std::string cut_tail_;
  AuditHistory history_;
};

struct AuditSummary {
  uint64_t records = 0;
  std::string last_hash;
};

// Checks a whole audit file: every line parses, indices run 0,1,2,... with no
// gap, each prev_hash names the line before and each hash matches its line.
// DATA_LOSS naming the first bad line for an edit, a deleted or reordered
// record or a torn line in the middle. A missing final newline is a torn tail.
absl::StatusOr<AuditSummary> VerifyAuditChain(absl::string_view content);

// The longest verifiable prefix of an audit file: its records, head hash and
// length, the first error after it (OK if none), and whether that error is
// only a torn tail (the last line partial or bad, or only zero bytes left).
struct AuditPrefix {
  uint64_t records = 0;
  std::string last_hash;
  size_t valid_bytes = 0;
  absl::Status error;
  bool torn_tail = false;
  AuditHistory history;  // of the valid prefix
};
AuditPrefix VerifyAuditPrefix(absl::string_view content);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_STATE_AUDIT_LOG_H_
