#include "agent/common/reason.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace nodeward {
namespace {
constexpr absl::string_view kReasonUrl = "type.nodeward.dev/reason";
constexpr absl::string_view kConsumedUrl = "type.nodeward.dev/sequence-consumed";
}  // namespace

absl::Status Reject(absl::StatusCode code, absl::string_view reason_code,
                    absl::string_view message) {
  absl::Status s(code, absl::StrCat(reason_code, ": ", message));
  s.SetPayload(kReasonUrl, absl::Cord(reason_code));
  return s;
}

std::string ReasonOf(const absl::Status& status) {
  auto p = status.GetPayload(kReasonUrl);
  return p ? std::string(*p) : std::string();
}

absl::Status WithReason(absl::Status status, absl::string_view reason_code) {
  if (!status.ok()) status.SetPayload(kReasonUrl, absl::Cord(reason_code));
  return status;
}

absl::Status WithDefaultReason(absl::Status status, absl::string_view reason_code) {
  if (!status.ok() && ReasonOf(status).empty()) status.SetPayload(kReasonUrl, absl::Cord(reason_code));
  return status;
}

absl::Status MarkSequenceConsumed(absl::Status status) {
  if (!status.ok()) status.SetPayload(kConsumedUrl, absl::Cord("1"));
  return status;
}

bool SequenceConsumed(const absl::Status& status) {
  return status.GetPayload(kConsumedUrl).has_value();
}

}  // namespace nodeward
