#include "agent/state/audit_log.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/crypto.h"
#include "agent/common/proto_util.h"
#include "agent/common/status_macros.h"

namespace nodeward {
namespace {
const std::string kGenesis(64, '0');
}  // namespace

std::string AuditRecordHash(const nodeward::v1::AuditRecord& record) {
  nodeward::v1::AuditRecord r = record;
  r.clear_hash();
  return HexEncode(Sha256(absl::StrCat(r.prev_hash(), "\n", ToJsonLine(r))));
}

absl::StatusOr<AuditSummary> VerifyAuditChain(absl::string_view content) {
  AuditSummary out;
  out.last_hash = kGenesis;
  if (content.empty()) return out;
  if (content.back() != '\n') {
    return absl::DataLossError("audit file ends in a partial line (torn or truncated)");
  }
  content.remove_suffix(1);
  uint64_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_no;
    nodeward::v1::AuditRecord r;
    if (absl::Status s = ParseJson(line, &r, "audit record"); !s.ok()) {
      return absl::DataLossError(absl::StrCat("line ", line_no, ": ", s.message()));
    }
    if (r.index() != out.records) {
      return absl::DataLossError(absl::StrCat("line ", line_no, ": index ", r.index(),
                                              " where ", out.records,
                                              " was expected (a record was deleted or moved)"));
    }
    if (r.prev_hash() != out.last_hash) {
      return absl::DataLossError(
          absl::StrCat("line ", line_no, ": prev_hash does not name the record before it"));
    }
    if (AuditRecordHash(r) != r.hash()) {
      return absl::DataLossError(
          absl::StrCat("line ", line_no, ": hash does not match the record (edited)"));
    }
    out.last_hash = r.hash();
    ++out.records;
  }
  return out;
}

AuditPrefix VerifyAuditPrefix(absl::string_view content) {
  AuditPrefix out;
  out.last_hash = kGenesis;
  size_t at = 0;
  uint64_t line_no = 0;
  while (at < content.size()) {
    const size_t nl = content.find('\n', at);
    ++line_no;
    absl::string_view line =
        content.substr(at, nl == absl::string_view::npos ? absl::string_view::npos : nl - at);
    absl::Status bad;
    nodeward::v1::AuditRecord r;
    if (nl == absl::string_view::npos) {
      bad = absl::DataLossError(absl::StrCat("line ", line_no, " is partial (no newline)"));
    } else if (absl::Status s = ParseJson(line, &r, "audit record"); !s.ok()) {
      bad = absl::DataLossError(absl::StrCat("line ", line_no, ": ", s.message()));
    } else if (r.index() != out.records) {
      bad = absl::DataLossError(absl::StrCat("line ", line_no, ": index ", r.index(), " where ",
                                             out.records,
                                             " was expected (a record was deleted or moved)"));
    } else if (r.prev_hash() != out.last_hash) {
      bad = absl::DataLossError(
          absl::StrCat("line ", line_no, ": prev_hash does not name the record before it"));
    } else if (AuditRecordHash(r) != r.hash()) {
      bad = absl::DataLossError(
          absl::StrCat("line ", line_no, ": hash does not match the record (edited)"));
    }
    if (!bad.ok()) {
      out.error = bad;
      // A torn tail: the bad line is the last one (what a crash in the
      // middle of a write, or a file system that extended the file with
      // zeros, leaves), or everything after the good prefix is zero bytes.
      absl::string_view rest = content.substr(at);
      const bool zeros_only =
          rest.find_first_not_of(absl::string_view("\0\n", 2)) == absl::string_view::npos;
      const size_t next = rest.find('\n');
      out.torn_tail = zeros_only || next == absl::string_view::npos || next + 1 == rest.size();
      return out;
    }
    out.last_hash = r.hash();
    ++out.records;
    if (r.event().empty() && !r.decision().empty()) {
      AuditHistory& h = out.history;
      if (r.decision() == "applied") ++h.applied;
      else if (r.decision() == "replayed") ++h.replayed;
      else ++h.rejected;
      nodeward::v1::RecentCommand rc;
      rc.set_command_id(r.command_id());
      rc.set_sequence(r.sequence());
      rc.set_command_type(r.command_type());
      rc.set_decision(r.decision());
      rc.set_reason(r.reason());
      *rc.mutable_time() = r.time();
      h.recent.insert(h.recent.begin(), std::move(rc));
      if (h.recent.size() > AuditHistory::kRecentLimit) h.recent.pop_back();
    }
    at = nl + 1;
    out.valid_bytes = at;
  }
  return out;
}

AuditLog::AuditLog(platform::FileSystem* fs, std::string path, platform::AppendableFilePtr file,
                   uint64_t next_index, std::string last_hash)
    : fs_(fs),
      path_(std::move(path)),
      recent_first_(next_index),
      durable_records_(next_index),
      durable_hash_(last_hash),
      file_(std::move(file)),
      next_index_(next_index),
      last_hash_(std::move(last_hash)) {}

AuditLog::Head AuditLog::DurableHead() const {
  absl::MutexLock lock(&mu_);
  return Head{durable_records_, durable_hash_};
}

absl::StatusOr<std::vector<nodeward::v1::AuditRecord>> AuditLog::Read(uint64_t from,
                                                                      size_t max) const {
  std::vector<nodeward::v1::AuditRecord> out;
  uint64_t file_until = 0;  // records below this come from the file
  uint64_t offset = 0;
  {
    absl::MutexLock lock(&mu_);
    const uint64_t until = std::min<uint64_t>(durable_records_, from + max);
    if (from >= until) return out;
    if (from >= recent_first_) {
      for (uint64_t i = from; i < until; ++i) out.push_back(recent_[i - recent_first_]);
      return out;
    }
    if (from >= offsets_.size()) {
      return absl::DataLossError(absl::StrCat("audit record ", from, " of ", path_,
                                              " is neither in memory nor indexed"));
    }
    file_until = std::min<uint64_t>(until, recent_first_);
    offset = offsets_[from];
  }
  // Records Open found: read back and re-checked (the file is root's to
  // edit; what is shipped must be what the chain says).
  ASSIGN_OR_RETURN(std::string content, fs_->ReadFile(path_));
  size_t at = offset;
  for (uint64_t i = from; i < file_until; ++i) {
    const size_t nl = content.find('\n', at);
    if (at > content.size() || nl == std::string::npos) {
      return absl::DataLossError(
          absl::StrCat("reading back audit record ", i, " of ", path_, ": the file is shorter"));
    }
    nodeward::v1::AuditRecord r;
    absl::Status parsed = ParseJson(absl::string_view(content).substr(at, nl - at), &r, "audit record");
    if (!parsed.ok() || r.index() != i || AuditRecordHash(r) != r.hash()) {
      return absl::DataLossError(absl::StrCat("reading back audit record ", i, " of ", path_,
                                              ": the line was changed since the agent started"));
    }
    out.push_back(std::move(r));
    at = nl + 1;
  }
  if (out.size() < max) {
    absl::MutexLock lock(&mu_);
    const uint64_t until = std::min<uint64_t>(durable_records_, from + max);
    for (uint64_t i = file_until; i < until && i >= recent_first_; ++i) {
      out.push_back(recent_[i - recent_first_]);
    }
  }
  return out;
}

absl::StatusOr<std::string> AuditLog::HashAt(uint64_t index) const {
  {
    absl::MutexLock lock(&mu_);
    if (index >= durable_records_) {
      return absl::OutOfRangeError(absl::StrCat("audit record ", index, " is past the head (",
                                                durable_records_, " records)"));
    }
    if (index + 1 == durable_records_) return durable_hash_;
  }
  ASSIGN_OR_RETURN(std::vector<nodeward::v1::AuditRecord> r, Read(index, 1));
  if (r.empty()) return absl::OutOfRangeError(absl::StrCat("audit record ", index, " not found"));
  return r[0].hash();
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(platform::FileSystem* fs,
                                                         const std::string& path) {
  absl::StatusOr<std::string> content = fs->ReadFile(path);
  if (!content.ok() && !absl::IsNotFound(content.status())) return content.status();
  AuditPrefix prefix;
  prefix.last_hash = kGenesis;
  if (content.ok()) {
    prefix = VerifyAuditPrefix(*content);
    if (!prefix.error.ok() && !prefix.torn_tail) {
      return absl::FailedPreconditionError(
          absl::StrCat("audit chain ", path, " is broken: ", prefix.error.message()));
    }
  }
  ASSIGN_OR_RETURN(platform::AppendableFilePtr file, fs->OpenForAppend(path, 0600));
  std::unique_ptr<AuditLog> log(
      new AuditLog(fs, path, std::move(file), prefix.records, prefix.last_hash));
  log->history_ = std::move(prefix.history);
  if (content.ok()) {
    absl::MutexLock lock(&log->mu_);
    log->offsets_.reserve(prefix.records);
    size_t at = 0;
    for (uint64_t i = 0; i < prefix.records; ++i) {
      log->offsets_.push_back(at);
      at = content->find('\n', at) + 1;
    }
  }
  if (content.ok() && !prefix.error.ok()) {
    // Cut like the journal's torn tail, durably, and say so in the chain.
    const absl::string_view cut = absl::string_view(*content).substr(prefix.valid_bytes);
    {
      absl::MutexLock lock(&log->mu_);
      RETURN_IF_ERROR(log->file_->Truncate(prefix.valid_bytes));
      RETURN_IF_ERROR(log->file_->Sync());
    }
    nodeward::v1::AuditRecord r;
    r.set_event("audit_tail_cut");
    r.set_message(absl::StrCat("cut a torn tail of ", cut.size(), " bytes (sha256 ",
                               HexEncode(Sha256(cut)), ") after record ", prefix.records,
                               ": ", prefix.error.message()));
    log->cut_tail_ = r.message();
    RETURN_IF_ERROR(log->Append(std::move(r)));
  }
  return log;
}

absl::Status AuditLog::Append(nodeward::v1::AuditRecord record) {
  absl::Status s = AppendDurably(&record);
  // Outside every lock: the observer may take its own.
  if (s.ok() && observer_) observer_(record);
  if (s.ok() && listener_) listener_();
  return s;
}

absl::Status AuditLog::AppendDurably(nodeward::v1::AuditRecord* record_ptr) {
  nodeward::v1::AuditRecord& record = *record_ptr;
  uint64_t mine = 0;
  platform::AppendableFile* file = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) return broken_;
    record.set_index(next_index_);
    record.set_prev_hash(last_hash_);
    record.set_hash(AuditRecordHash(record));
    const uint64_t before = file_->Size();
    absl::Status s = file_->Append(absl::StrCat(ToJsonLine(record), "\n"));
    if (!s.ok()) {
      // Cut a partial line so the chain stays verifiable; the record is lost
      // and the caller reports that. If even the cut fails, the file may end
      // in a torn line: nothing more is appended until a restart cuts it.
      absl::Status cut = file_->Size() == before ? absl::OkStatus() : file_->Truncate(before);
      if (!cut.ok()) {
        broken_ = absl::DataLossError(absl::StrCat(
            "a failed audit write could not be cut (", cut.message(), "); restart to repair"));
      }
      return s;
    }
    ++next_index_;
    last_hash_ = record.hash();
    if (recent_.empty()) recent_offset_ = before;
    recent_.push_back(record);
    mine = ++appended_;
    file = file_.get();
  }
  // Written through, with group commit: the line is on disk before the
  // caller returns the outcome it records, and concurrent appenders share
  // one fdatasync (the first to get here syncs everything written so far).
  absl::MutexLock sync_lock(&sync_mu_);
  uint64_t target = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) return broken_;
    if (synced_ >= mine) return absl::OkStatus();
    target = appended_;
  }
  absl::Status s = file->Sync();
  absl::MutexLock lock(&mu_);
  if (!s.ok()) {
    // After a failed fdatasync the page cache cannot be trusted: no later
    // line is vouched for until a restart re-reads the file.
    broken_ = absl::DataLossError(
        absl::StrCat("audit fdatasync failed (", s.message(), "); restart to re-read the log"));
    return s;
  }
  synced_ = target;
  // Records up to `target` of this process are durable: visible to Read.
  const uint64_t durable = next_index_ - (appended_ - target);
  if (durable > durable_records_) {
    durable_records_ = durable;
    durable_hash_ = recent_[durable - 1 - recent_first_].hash();
  }
  // Keep the last kRecentKept; older ones are read back from the file by
  // offset, which needs the offsets of the ones dropped here.
  while (recent_.size() > kRecentKept && recent_first_ < durable_records_) {
    offsets_.resize(recent_first_);
    offsets_.push_back(recent_offset_);
    recent_offset_ += ToJsonLine(recent_.front()).size() + 1;
    recent_.pop_front();
    ++recent_first_;
  }
  return absl::OkStatus();
}

absl::Status AuditLog::Sync() {
  absl::MutexLock lock(&mu_);
  return file_->Sync();
}

}  // namespace nodeward
