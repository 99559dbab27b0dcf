#include "agent/wipe/wipe.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "agent/wipe/receipt.h"
#include "agent/common/proto_util.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"

namespace nodeward::wipe {

using nodeward::v1::WipeItem;
using nodeward::v1::WipeReceipt;
using nodeward::v1::WipeResult;
WipeHandler::WipeHandler(WipeDeps deps, WipeOptions options)
    : deps_(deps), options_(std::move(options)) {}

absl::Status WipeHandler::Persist() {
  return deps_.fs->WriteFileAtomically(options_.state_path, record_.SerializeAsString(), 0600);
}

absl::Status WipeHandler::Restore() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<bool> read = ReadRecordFile(deps_.fs, options_.state_path, &record_, "wipe record");
  if (!read.ok()) {
    return absl::Status(read.status().code(),
                        absl::StrCat(read.status().message(), "; nothing was done"));
  }
  if (!*read) return absl::OkStatus();
  have_record_ = true;
  FenceLocked();
  if (record_.has_result()) {
    wiped_.store(true);
    return absl::OkStatus();
  }
  // Cut short (crash, power loss, a step that failed): the signed command
  // stands, so finish it now.
  record_.mutable_receipt()->set_resumed(true);
  absl::StatusOr<WipeResult> r = RunLocked();
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat("resume the interrupted wipe: ", r.status().message()));
  }
  return absl::OkStatus();
}

WipeHandler::Summary WipeHandler::Describe() {
  if (!mu_.TryLock()) return Summary{"running", true};
  Summary out;
  if (have_record_ && record_.has_result()) {
    out.text = absl::StrCat("complete at ",
                            absl::FormatTime(absl::RFC3339_sec,
                                             FromTimestamp(record_.receipt().completed_at()),
                                             absl::UTCTimeZone()));
  } else if (have_record_) {
    std::vector<std::string> failed;
    for (const WipeItem& i : record_.receipt().items()) {
      if (!i.verified()) failed.push_back(absl::StrCat(i.id(), ": ", i.detail()));
    }
    out.incomplete = true;
    out.text = absl::StrCat("started, not finished (resend Wipe to finish)",
                            failed.empty() ? "" : ": ", absl::StrJoin(failed, "; "));
  }
  mu_.Unlock();
  return out;
}

void WipeHandler::FenceLocked() {
  const std::string why = absl::StrCat("a wipe was ordered on this node (command ",
                                       record_.receipt().command_id(),
                                       "): it takes no new volumes or keys");
  if (deps_.volumes != nullptr) deps_.volumes->Fence(why);
  if (deps_.backup_keys != nullptr) deps_.backup_keys->Fence(why);
}

absl::StatusOr<WipeResult> WipeHandler::RunLocked() {
  WipeReceipt* receipt = record_.mutable_receipt();
  receipt->clear_items();
  std::vector<WipeItem> items;
  if (deps_.volumes != nullptr) {
    for (WipeItem& i : deps_.volumes->WipeAll()) items.push_back(std::move(i));
  }
  if (deps_.backup_keys != nullptr) {
    for (WipeItem& i : deps_.backup_keys->WipeAll()) items.push_back(std::move(i));
  }
  if (!options_.orphan_volume_records.empty()) {
    WipeItem orphan;
    orphan.set_kind(WipeItem::VOLUME);
    orphan.set_id(options_.orphan_volume_records);
    orphan.set_detail(
        "volume records exist but volume management is disabled in this node's config "
        "(volumes.enabled): enable it so the wipe can erase them; not verified");
    items.push_back(std::move(orphan));
  }
  bool complete = true;
  std::vector<std::string> failed;
  for (WipeItem& i : items) {
    complete = complete && i.verified();
    if (!i.verified()) failed.push_back(absl::StrCat(i.id(), ": ", i.detail()));
    *receipt->add_items() = std::move(i);
  }
  if (!complete) {
    absl::Status s = Persist();  // the next attempt (or start) resumes
    return WithReason(absl::InternalError(absl::StrCat(
        "wipe incomplete (", failed.size(), " of ", receipt->items_size(),
        " items not verified; resend Wipe to finish): ", absl::StrJoin(failed, "; "),
        s.ok() ? "" : absl::StrCat("; recording the progress failed: ", s.message()))),
        reason::kWipeIncomplete);
  }
  *receipt->mutable_completed_at() = ToTimestamp(deps_.clock->Now());
  receipt->set_complete(true);
  absl::StatusOr<WipeResult> signed_result =
      options_.signing_key == nullptr
          ? absl::FailedPreconditionError("the agent's signing key is not loaded")
          : SignReceipt(*receipt, *options_.signing_key);
  if (!signed_result.ok()) {
    receipt->set_complete(false);
    receipt->clear_completed_at();
    (void)Persist();
    return WithReason(
        absl::Status(signed_result.status().code(),
                     absl::StrCat("wipe done and verified, but the receipt could not be signed: ",
                                  signed_result.status().message())),
        reason::kWipeSigningKeyUnavailable);
  }
  *record_.mutable_result() = *signed_result;
  if (absl::Status s = Persist(); !s.ok()) {
    // Everything is erased; a later Wipe re-runs the (idempotent) steps and
    // signs again.
    record_.clear_result();
    return WithReason(absl::UnavailableError(absl::StrCat(
                          "wipe done and verified, but recording it failed: ", s.message())),
                      reason::kWipeStateNotPersisted);
  }
  wiped_.store(true);
  return *signed_result;
}

absl::StatusOr<nodeward::v1::CommandResult> WipeHandler::Apply(const VerifiedCommand& command) {
  const auto& w = command.command.wipe();
  if (w.reason().size() > 256) {
    return WithReason(absl::InvalidArgumentError("wipe: reason is longer than 256 bytes"),
                      reason::kWipeSpecInvalid);
  }
  absl::MutexLock lock(&mu_);
  nodeward::v1::CommandResult result;
  if (record_.has_result()) {
    *result.mutable_wipe() = record_.result();
    result.mutable_wipe()->set_already_wiped(true);
    return result;
  }
  if (!have_record_) {
    // The intent first: from here on an interrupted wipe is finished at the
    // next start.
    WipeReceipt* r = record_.mutable_receipt();
    r->set_node_id(options_.node_id);
    r->set_boot_id(options_.boot_id);
    r->set_command_id(command.command.command_id());
    r->set_sequence(command.command.sequence());
    r->set_reason(w.reason());
    *r->mutable_started_at() = ToTimestamp(deps_.clock->Now());
    if (absl::Status s = Persist(); !s.ok()) {
      record_.Clear();
      return WithReason(absl::UnavailableError(absl::StrCat("wipe: record the intent: ",
                                                            s.message(), "; nothing was done")),
                        reason::kWipeStateNotPersisted);
    }
    have_record_ = true;
  }
  FenceLocked();
  absl::StatusOr<nodeward::v1::WipeResult> done = RunLocked();
  if (!done.ok()) return WithDefaultReason(done.status(), reason::kWipeIncomplete);
  *result.mutable_wipe() = std::move(done).value();
  return result;
}

absl::StatusOr<nodeward::v1::CommandResult> RefuseAfterWipe::Apply(const VerifiedCommand& command) {
  if (wipe_->wiped()) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat(
                          command.command_type,
                          ": this node was wiped and takes no new volumes or keys")),
                      reason::kWipeStarted);
  }
  return inner_->Apply(command);
}

}  // namespace nodeward::wipe
