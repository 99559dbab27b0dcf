#include "agent/command/command_types.h"

#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "agent/common/reason.h"
#include "google/protobuf/descriptor.h"

namespace nodeward {
namespace {

constexpr absl::string_view kPrefix = "application/vnd.nodeward.v1.command.";
constexpr absl::string_view kSuffix = "+protobuf";

const google::protobuf::OneofDescriptor* Body() {
  return nodeward::v1::Command::descriptor()->FindOneofByName("body");
}

}  // namespace

bool IsKnownCommandType(absl::string_view type) {
  const auto* body = Body();
  for (int i = 0; i < body->field_count(); ++i) {
    if (body->field(i)->name() == type) return true;
  }
  return false;
}

bool IsKnownPolicyName(absl::string_view name) {
  return IsKnownCommandType(name) || name == kDestroyingSetupVolume;
}

std::string DestructiveVariantOf(const nodeward::v1::Command& command) {
  if (command.has_setup_volume() && command.setup_volume().destroy_existing_data()) {
    return std::string(kDestroyingSetupVolume);
  }
  return "";
}

std::string PayloadTypeFor(absl::string_view type) { return absl::StrCat(kPrefix, type, kSuffix); }

absl::StatusOr<std::string> CommandTypeFromPayloadType(absl::string_view payload_type) {
  absl::string_view t = payload_type;
  if (absl::ConsumePrefix(&t, kPrefix) && absl::ConsumeSuffix(&t, kSuffix) &&
      IsKnownCommandType(t)) {
    return std::string(t);
  }
  return Reject(absl::StatusCode::kInvalidArgument, reason::kPayloadTypeUnknown,
                absl::StrCat("payload_type '", payload_type.substr(0, 128),
                             "' names no command type this agent knows"));
}

std::string CommandTypeOf(const nodeward::v1::Command& command) {
  const auto* f = command.GetReflection()->GetOneofFieldDescriptor(command, Body());
  return f == nullptr ? std::string() : f->name();
}

}  // namespace nodeward
