#ifndef NODEWARD_AGENT_ACCESS_ACCESS_MANAGER_H_
#define NODEWARD_AGENT_ACCESS_ACCESS_MANAGER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/command/command_handler.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/state.pb.h"
#include "platform/clock.h"
#include "platform/file_system.h"
#include "platform/logins.h"

namespace nodeward::access {

struct AccessDeps {
  platform::FileSystem* fs;
  platform::Clock* clock;
  platform::Logins* logins;
  // Writes one record to the audit chain (event name, message).
  std::function<void(const std::string& event, const std::string& message)> audit;
};

struct AccessOptions {
  std::string account = "nwops";
  std::string keys_file;   // what sshd reads for the account
  std::string state_file;  // <state_dir>/access.pb
  absl::Duration max_window = absl::Hours(8);
};

// Operator access (docs/operator-access.md): GrantOperatorAccess,
// RevokeOperatorAccess and AcknowledgeUnauthorisedAccess, and Poll, which
// the main loop calls every second to end expired windows, repair the key
// file and judge every login session against the windows. Every window,
// session and finding is audited; what is not acknowledged survives a
// restart (access.pb). Thread-safe.
class AccessManager final : public CommandHandler {
 public:
  // Loads access.pb and writes the key file from it (expired windows
  // dropped): the file is the agent's whatever was there.
  static absl::StatusOr<std::unique_ptr<AccessManager>> Create(AccessDeps deps,
                                                               AccessOptions options);

  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;
  void Poll();
  nodeward::v1::AccessHealth Status();

 private:
  AccessManager(AccessDeps deps, AccessOptions options);
  absl::StatusOr<nodeward::v1::CommandResult> Grant(const VerifiedCommand& command)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<nodeward::v1::CommandResult> Revoke(const nodeward::v1::RevokeOperatorAccess& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<nodeward::v1::CommandResult> Acknowledge(
      const nodeward::v1::AcknowledgeUnauthorisedAccess& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // access.pb then the key file, from `state_`; on failure the previous
  // state is restored (memory and files).
  absl::Status Commit(nodeward::v1::AccessState previous) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string KeysFileContent() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SaveState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the account's sessions (revoke, last window over): how many.
  uint32_t TerminateAccount(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireWindows(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckKeysFile() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void JudgeSessions(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The window `s` fell in (null: none).
  const nodeward::v1::AccessWindow* WindowFor(const platform::LoginSession& s, absl::Time at) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AccessDeps deps_;
  const AccessOptions options_;
  absl::Mutex mu_;
  nodeward::v1::AccessState state_ ABSL_GUARDED_BY(mu_);
  bool keys_intact_ ABSL_GUARDED_BY(mu_) = true;
  std::string error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward::access

#endif  // NODEWARD_AGENT_ACCESS_ACCESS_MANAGER_H_
