#include "agent/state/command_ledger.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/logging.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"
#include "agent/state/record_framing.h"

namespace nodeward {
namespace {

using absl::StatusCode;
using nodeward::v1::JournalRecord;
using nodeward::v1::LedgerEntry;
using nodeward::v1::LedgerSnapshot;
using nodeward::v1::Outcome;

constexpr uint32_t kFileMode = 0600;

absl::Status Unavailable(const absl::Status& why) {
  return Reject(StatusCode::kUnavailable, reason::kStateUnavailable,
                absl::StrCat("state directory unusable, commands refused: ", why.message()));
}

}  // namespace

CommandLedger::CommandLedger(platform::FileSystem* fs, LedgerOptions options)
    : fs_(fs), options_(std::move(options)) {}

std::unique_ptr<CommandLedger> CommandLedger::Open(platform::FileSystem* fs, LedgerOptions options,
                                                   absl::Time now) {
  std::unique_ptr<CommandLedger> ledger(new CommandLedger(fs, std::move(options)));
  absl::Status s = ledger->Load(now);
  if (!s.ok()) {
    absl::MutexLock lock(&ledger->mu_);
    ledger->BreakLocked(s);
  }
  return ledger;
}

std::string CommandLedger::JournalPath(uint64_t generation) const {
  return absl::StrCat(options_.dir, "/journal.", generation);
}

absl::Status CommandLedger::Load(absl::Time now) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fs_->MakeDirectory(options_.dir, 0700));
  const std::string snapshot_path = absl::StrCat(options_.dir, "/snapshot");
  absl::StatusOr<std::string> snap = fs_->ReadFile(snapshot_path);
  if (absl::IsNotFound(snap.status())) {
    // A journal without its snapshot means the snapshot was lost: starting
    // fresh would silently reset the high-water mark.
    // Any journal.N, not only journal.1 (after a compaction only N >= 2
    // exists): a journal without its snapshot is corruption, never a first
    // start (security rule 5).
    ASSIGN_OR_RETURN(std::vector<platform::FileSystem::Entry> entries, fs_->ListTree(options_.dir));
    const std::string journal_prefix = absl::StrCat(options_.dir, "/journal.");
    for (const auto& e : entries) {
      if (e.directory || !absl::StartsWith(e.path, journal_prefix)) continue;
      return absl::DataLossError(absl::StrCat(
          snapshot_path, " is missing but ", e.path,
          " exists (the ledger is not new); refusing to reset the sequence"));
    }
    LedgerSnapshot fresh;
    fresh.set_journal_generation(1);
    RETURN_IF_ERROR(fs_->WriteFileAtomically(snapshot_path, fresh.SerializeAsString(), kFileMode));
    snap = fresh.SerializeAsString();
  }
  if (!snap.ok()) return snap.status();
  LedgerSnapshot snapshot;
  if (!snapshot.ParseFromString(*snap) || snapshot.journal_generation() == 0) {
    return absl::DataLossError(absl::StrCat(snapshot_path, " is corrupt"));
  }
  high_water_mark_ = snapshot.high_water_mark();
  generation_ = snapshot.journal_generation();
  for (const LedgerEntry& e : snapshot.entries()) {
    entries_[e.intent().command_id()] = e;
    used_sequences_.insert(e.intent().sequence());
  }

  const std::string journal_path = JournalPath(generation_);
  absl::StatusOr<std::string> data = fs_->ReadFile(journal_path);
  if (!data.ok() && !absl::IsNotFound(data.status())) return data.status();
  std::string content = data.ok() ? *data : std::string();
  absl::StatusOr<DecodedFrames> frames = DecodeFrames(content);
  if (!frames.ok()) {
    return absl::DataLossError(absl::StrCat(journal_path, ": ", frames.status().message()));
  }
  for (const std::string& body : frames->bodies) {
    JournalRecord r;
    if (!r.ParseFromString(body)) {
      return absl::DataLossError(absl::StrCat(journal_path, ": a record does not parse"));
    }
    RETURN_IF_ERROR(ApplyRecord(r));
    ++records_since_snapshot_;
  }
  ASSIGN_OR_RETURN(journal_, fs_->OpenForAppend(journal_path, kFileMode));
  if (frames->torn_tail) {
    NW_LOG_WARNING("command journal ", journal_path, ": cutting a torn tail of ",
                   content.size() - frames->valid_bytes, " bytes (never acknowledged)");
    RETURN_IF_ERROR(journal_->Truncate(frames->valid_bytes));
  }
  written_ = synced_ = journal_->Size();

  // Intents without outcomes: the agent stopped between journaling and
  // recording the outcome. Never re-applied; recorded as in doubt so a
  // replay gets a definite answer.
  for (auto& [id, entry] : entries_) {
    if (entry.has_outcome()) continue;
    Outcome o;
    o.set_code(static_cast<int>(StatusCode::kAborted));
    o.set_reason(std::string(reason::kInDoubt));
    o.set_message("the agent stopped before this command's outcome was recorded; not re-applied");
    *o.mutable_time() = ToTimestamp(now);
    JournalRecord r;
    r.mutable_outcome()->set_command_id(id);
    *r.mutable_outcome()->mutable_outcome() = o;
    RETURN_IF_ERROR(journal_->Append(EncodeFrame(r.SerializeAsString())));
    *entry.mutable_outcome() = o;
    recovered_in_doubt_.push_back(id);
  }
  if (!recovered_in_doubt_.empty()) {
    RETURN_IF_ERROR(journal_->Sync());
    written_ = synced_ = journal_->Size();
  }
  pending_ = 0;
  return absl::OkStatus();
}

absl::Status CommandLedger::ApplyRecord(const JournalRecord& record) {
  if (record.has_intent()) {
    const auto& in = record.intent();
    *entries_[in.command_id()].mutable_intent() = in;
    used_sequences_.insert(in.sequence());
    high_water_mark_ = std::max(high_water_mark_, in.sequence());
    return absl::OkStatus();
  }
  if (record.has_outcome()) {
    auto it = entries_.find(record.outcome().command_id());
    if (it == entries_.end()) {
      return absl::DataLossError("journal has an outcome for a command it never admitted");
    }
    *it->second.mutable_outcome() = record.outcome().outcome();
    return absl::OkStatus();
  }
  return absl::DataLossError("journal has an empty record");
}

absl::StatusOr<CommandLedger::Admission> CommandLedger::Admit(const VerifiedCommand& command,
                                                              absl::Time now, Mode mode) {
  const auto& c = command.command;
  uint64_t offset = 0;
  uint64_t prev_mark = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!health_.ok()) return Unavailable(health_);
    auto it = entries_.find(c.command_id());
    if (it != entries_.end()) {
      const auto& in = it->second.intent();
      if (in.payload_sha256() != command.payload_sha256 || in.sequence() != c.sequence()) {
        return Reject(StatusCode::kAlreadyExists, reason::kCommandIdReused,
                      absl::StrCat("command id ", c.command_id(),
                                   " was already used for a different command"));
      }
      if (!it->second.has_outcome()) {
        return Reject(StatusCode::kAborted, reason::kCommandInProgress,
                      absl::StrCat("command ", c.command_id(), " is still being applied"));
      }
      return Admission{true, it->second.outcome()};
    }
    const uint64_t seq = c.sequence();
    const uint64_t window = options_.sequence_window;
    if (seq <= high_water_mark_) {
      if (window == 0 || high_water_mark_ - seq >= window || used_sequences_.count(seq) != 0) {
        return Reject(StatusCode::kAlreadyExists, reason::kSequenceReplayed,
                      absl::StrCat("sequence ", seq, " is not above the high-water mark ",
                                   high_water_mark_,
                                   window == 0 ? "" : " or was already used within the window"));
      }
    } else if (seq - high_water_mark_ > options_.max_sequence_jump) {
      return Reject(StatusCode::kOutOfRange, reason::kSequenceJumpTooLarge,
                    absl::StrCat("sequence ", seq, " jumps ", seq - high_water_mark_,
                                 " past the high-water mark ", high_water_mark_, " (max ",
                                 options_.max_sequence_jump, ")"));
    }

    JournalRecord r;
    auto* in = r.mutable_intent();
    in->set_command_id(c.command_id());
    in->set_sequence(seq);
    in->set_command_type(command.command_type);
    in->set_payload_sha256(command.payload_sha256);
    for (const auto& k : command.signer_key_ids) in->add_signer_key_ids(k);
    *in->mutable_received_at() = ToTimestamp(now);
    prev_mark = high_water_mark_;
    if (mode == Mode::kWriteAhead) {
      absl::StatusOr<uint64_t> end = AppendLocked(r);
      if (!end.ok()) return Unavailable(end.status());
      offset = *end;
    } else {
      unwritten_intents_[c.command_id()] = high_water_mark_;
    }
    *entries_[c.command_id()].mutable_intent() = *in;
    used_sequences_.insert(seq);
    high_water_mark_ = std::max(high_water_mark_, seq);
    if (window != 0) {
      while (!used_sequences_.empty() && high_water_mark_ - *used_sequences_.begin() >= window) {
        used_sequences_.erase(used_sequences_.begin());
      }
    } else {
      used_sequences_.clear();
    }
    ++pending_;
  }
  if (mode == Mode::kPure) return Admission{};
  absl::Status s = WaitDurable(offset);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    --pending_;
    ForgetLocked(c.command_id(), c.sequence(), prev_mark);
    return Unavailable(s);
  }
  return Admission{};
}

absl::Status CommandLedger::RecordOutcome(const std::string& command_id, const Outcome& outcome) {
  uint64_t offset = 0;
  bool pure = false;
  uint64_t pure_seq = 0;
  uint64_t pure_prev_mark = 0;
  {
    absl::MutexLock lock(&mu_);
    --pending_;
    if (!health_.ok()) return Unavailable(health_);
    auto unwritten = unwritten_intents_.find(command_id);
    if (unwritten != unwritten_intents_.end()) {
      const uint64_t prev = unwritten->second;
      unwritten_intents_.erase(unwritten);
      JournalRecord intent;
      *intent.mutable_intent() = entries_[command_id].intent();
      absl::StatusOr<uint64_t> end = AppendLocked(intent);
      if (!end.ok()) {
        ForgetLocked(command_id, intent.intent().sequence(), prev);
        return Unavailable(end.status());
      }
      pure = true;
      pure_seq = intent.intent().sequence();
      pure_prev_mark = prev;
    }
    JournalRecord r;
    r.mutable_outcome()->set_command_id(command_id);
    *r.mutable_outcome()->mutable_outcome() = outcome;
    absl::StatusOr<uint64_t> end = AppendLocked(r);
    if (!end.ok()) return Unavailable(end.status());
    offset = *end;
    *entries_[command_id].mutable_outcome() = outcome;
  }
  absl::Status s = WaitDurable(offset);
  absl::MutexLock lock(&mu_);
  if (!s.ok()) {
    // A pure command whose records never reached the disk left no trace:
    // status must not report its sequence.
    if (pure) ForgetLocked(command_id, pure_seq, pure_prev_mark);
    return Unavailable(s);
  }
  MaybeCompactLocked();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> CommandLedger::AppendLocked(const JournalRecord& record) {
  if (!health_.ok()) return health_;
  // Frames are queued in memory in admission order; the thread that leads
  // the next sync writes the whole batch and syncs it, so no write(2) or
  // fdatasync ever runs under mu_ and concurrent commands share one sync.
  const std::string frame = EncodeFrame(record.SerializeAsString());
  batch_.append(frame);
  // A logical offset across journal generations, so a waiter's target stays
  // meaningful if a compaction swaps the file underneath it.
  written_ += frame.size();
  ++records_since_snapshot_;
  return written_;
}

absl::Status CommandLedger::WaitDurable(uint64_t offset) {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (!health_.ok()) return health_;
    if (synced_ >= offset) return absl::OkStatus();
    if (!syncing_) break;
    // Another thread's write+sync is in flight; it or the next one covers us.
    mu_.Await(absl::Condition(
        +[](bool* syncing) { return !*syncing; }, &syncing_));
  }
  syncing_ = true;
  const uint64_t upto = written_;
  std::string batch;
  batch.swap(batch_);
  platform::AppendableFile* file = journal_.get();
  mu_.Unlock();
  absl::Status s = file->Append(batch);
  if (s.ok()) s = file->Sync();
  mu_.Lock();
  syncing_ = false;
  if (!s.ok()) {
    // After a failed write or fsync the page cache can no longer be trusted
    // (fsyncgate): refuse until a restart re-reads what is really on disk.
    BreakLocked(s);
    return s;
  }
  synced_ = std::max(synced_, upto);
  return synced_ >= offset ? absl::OkStatus() : absl::InternalError("journal sync fell short");
}

void CommandLedger::MaybeCompactLocked() {
  // Only the sync leader's file access happens outside mu_, so that is the
  // one thing to wait for. Commands in flight are carried over: their
  // entries (intent, no outcome yet) go into the snapshot, so queued frames
  // and waiters are covered by it, and their outcomes go to the new journal.
  if (records_since_snapshot_ < options_.compact_after_records || syncing_ || !health_.ok()) {
    return;
  }
  std::vector<const LedgerEntry*> all;
  for (const auto& [id, e] : entries_) all.push_back(&e);
  std::sort(all.begin(), all.end(), [](const LedgerEntry* a, const LedgerEntry* b) {
    return a->intent().sequence() > b->intent().sequence();
  });
  LedgerSnapshot snap;
  snap.set_high_water_mark(high_water_mark_);
  snap.set_journal_generation(generation_ + 1);
  std::map<std::string, LedgerEntry> kept;
  for (const LedgerEntry* e : all) {
    bool in_window = high_water_mark_ - e->intent().sequence() < options_.sequence_window;
    if (kept.size() >= options_.retain_entries && !in_window && e->has_outcome()) continue;
    *snap.add_entries() = *e;
    kept[e->intent().command_id()] = *e;
  }
  const std::string snapshot_path = absl::StrCat(options_.dir, "/snapshot");
  absl::Status s = fs_->WriteFileAtomically(snapshot_path, snap.SerializeAsString(), kFileMode);
  if (!s.ok()) {
    // The old snapshot and journal are intact; keep appending to them.
    NW_LOG_WARNING("compact command journal: ", s.message());
    return;
  }
  absl::StatusOr<platform::AppendableFilePtr> next =
      fs_->OpenForAppend(JournalPath(generation_ + 1), kFileMode);
  if (!next.ok()) {
    BreakLocked(next.status());
    return;
  }
  (void)fs_->RemoveFile(JournalPath(generation_));
  ++generation_;
  journal_ = std::move(next).value();
  // Everything written or queued so far is in the durable snapshot now.
  batch_.clear();
  synced_ = written_;
  records_since_snapshot_ = 0;
  entries_ = std::move(kept);
}

void CommandLedger::ForgetLocked(const std::string& id, uint64_t seq, uint64_t prev_mark) {
  if (high_water_mark_ == seq) high_water_mark_ = prev_mark;
  used_sequences_.erase(seq);
  entries_.erase(id);
}

void CommandLedger::BreakLocked(const absl::Status& why) {
  if (!health_.ok()) return;
  health_ = why;
  NW_LOG_ERROR("command ledger refuses commands from now on: ", why.message());
}

uint64_t CommandLedger::high_water_mark() const {
  absl::MutexLock lock(&mu_);
  return high_water_mark_;
}

absl::Status CommandLedger::health() const {
  absl::MutexLock lock(&mu_);
  return health_;
}

std::vector<std::string> CommandLedger::recovered_in_doubt() const {
  absl::MutexLock lock(&mu_);
  return recovered_in_doubt_;
}

}  // namespace nodeward
