#ifndef NODEWARD_AGENT_COMMAND_COMMAND_HANDLER_H_
#define NODEWARD_AGENT_COMMAND_COMMAND_HANDLER_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/command/verifier.h"
#include "nodeward/v1/agent.pb.h"

namespace nodeward {

// Applies one command type. Called only with a verified, journaled command.
// Returns the result to record, or an error that is recorded as the
// command's outcome. Must be idempotent with respect to observed state.
class CommandHandler {
 public:
  virtual ~CommandHandler() = default;
  virtual absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) = 0;
  // False only for commands that change nothing on the VM; those are
  // journaled after they ran, with one sync (CommandLedger::Mode::kPure).
  virtual bool ChangesState() const { return true; }
};

using CommandHandlerPtr = std::unique_ptr<CommandHandler>;
// Keyed by command type ("ping").
using HandlerMap = std::map<std::string, CommandHandlerPtr>;

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMAND_COMMAND_HANDLER_H_
