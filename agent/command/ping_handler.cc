#include "agent/command/ping_handler.h"

#include "agent/common/time_util.h"

namespace nodeward {

absl::StatusOr<nodeward::v1::CommandResult> PingHandler::Apply(const VerifiedCommand& command) {
  if (command.command.ping().note().size() > 256) {
    return absl::InvalidArgumentError("ping: note is longer than 256 bytes");
  }
  nodeward::v1::CommandResult r;
  r.mutable_ping()->set_note(command.command.ping().note());
  *r.mutable_ping()->mutable_agent_time() = ToTimestamp(clock_->Now());
  return r;
}

}  // namespace nodeward
