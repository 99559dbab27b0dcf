#include "agent/state/audit_log.h"

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

AuditLog::AuditLog(platform::AppendableFilePtr file, uint64_t next_index, std::string last_hash)
    : file_(std::move(file)), next_index_(next_index), last_hash_(std::move(last_hash)) {}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(platform::FileSystem* fs,
                                                         const std::string& path) {
  absl::StatusOr<std::string> content = fs->ReadFile(path);
  if (!content.ok() && !absl::IsNotFound(content.status())) return content.status();
  AuditSummary summary{0, kGenesis};
  if (content.ok()) {
    absl::StatusOr<AuditSummary> v = VerifyAuditChain(*content);
    if (!v.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("audit chain ", path, " is broken: ", v.status().message()));
    }
    summary = *v;
  }
  ASSIGN_OR_RETURN(platform::AppendableFilePtr file, fs->OpenForAppend(path, 0600));
  return std::unique_ptr<AuditLog>(
      new AuditLog(std::move(file), summary.records, summary.last_hash));
}

absl::Status AuditLog::Append(nodeward::v1::AuditRecord record) {
  absl::MutexLock lock(&mu_);
  record.set_index(next_index_);
  record.set_prev_hash(last_hash_);
  record.set_hash(AuditRecordHash(record));
  const uint64_t before = file_->Size();
  absl::Status s = file_->Append(absl::StrCat(ToJsonLine(record), "\n"));
  if (!s.ok()) {
    // Cut a partial line so the chain stays verifiable; the record is lost
    // and the caller reports that.
    (void)file_->Truncate(before);
    return s;
  }
  ++next_index_;
  last_hash_ = record.hash();
  return absl::OkStatus();
}

absl::Status AuditLog::Sync() {
  absl::MutexLock lock(&mu_);
  return file_->Sync();
}

}  // namespace nodeward
