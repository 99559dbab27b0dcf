#ifndef NODEWARD_AGENT_COMMAND_PING_HANDLER_H_
#define NODEWARD_AGENT_COMMAND_PING_HANDLER_H_

#include "agent/command/command_handler.h"
#include "platform/clock.h"

namespace nodeward {

// Ping changes nothing: it echoes the note and the agent's time.
class PingHandler final : public CommandHandler {
 public:
  explicit PingHandler(platform::Clock* clock) : clock_(clock) {}
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;
  bool ChangesState() const override { return false; }

 private:
  platform::Clock* clock_;
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMAND_PING_HANDLER_H_
