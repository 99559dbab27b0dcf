#ifndef NODEWARD_AGENT_WIPE_WIPE_H_
#define NODEWARD_AGENT_WIPE_WIPE_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "agent/backup/backup_key_store.h"
#include "agent/command/command_handler.h"
#include "agent/common/crypto.h"
#include "agent/volume/volume_manager.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/state.pb.h"
#include "platform/clock.h"
#include "platform/file_system.h"

namespace nodeward::wipe {

struct WipeDeps {
  volume::VolumeManager* volumes = nullptr;       // null when volumes are disabled
  backup::BackupKeyStore* backup_keys = nullptr;  // null: no backup keys on this node
  platform::FileSystem* fs = nullptr;
  platform::Clock* clock = nullptr;
};

// Volume records found on a node whose config disables volumes: the wipe
// cannot erase what it is not allowed to manage, so it never completes
// (one unverified item names them) until volumes are enabled again.

struct WipeOptions {
  std::string state_path;  // <state_dir>/wipe.pb
  std::string node_id;
  std::string boot_id;
  // The agent's signing key (agent/attest/signing_key.h); null: the wipe
  // runs but no receipt can be issued, so it never reports complete.
  const Ed25519PrivateKey* signing_key = nullptr;
  // <state_dir>/volumes.pb when volumes are disabled (deps.volumes null)
  // but that file exists; "" otherwise.
  std::string orphan_volume_records;
};

// Applies Wipe (docs/wipe.md). The record of a wipe is written before any
// step, so a wipe cut short is finished by Restore() at the next start; once
// complete, the signed receipt is kept and returned to any later Wipe.
class WipeHandler final : public CommandHandler {
 public:
  WipeHandler(WipeDeps deps, WipeOptions options);

  // Startup, after the volumes are restored: reads the record and finishes
  // an interrupted wipe. DATA_LOSS for a corrupt record (nothing is done).
  absl::Status Restore();
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;

  // A wipe completed on this node: it sets up nothing new any more.
  bool wiped() const { return wiped_.load(); }
  // For health: "" (never wiped), "complete at <time>", or why it is not
  // finished (incomplete=true). Never waits for a wipe that is running.
  struct Summary {
    std::string text;
    bool incomplete = false;
  };
  Summary Describe();

 private:
  // Runs every step (all idempotent) and, when all verified, signs.
  absl::StatusOr<nodeward::v1::WipeResult> RunLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Persist() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No new volume or key from the intent on (security rule 7).
  void FenceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WipeDeps deps_;
  const WipeOptions options_;
  absl::Mutex mu_;
  nodeward::v1::WipeRecord record_ ABSL_GUARDED_BY(mu_);
  bool have_record_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> wiped_{false};
};

// Refuses the wrapped command type once the node was wiped (a terminated
// node takes no new volumes or keys); otherwise passes it through.
class RefuseAfterWipe final : public CommandHandler {
 public:
  RefuseAfterWipe(const WipeHandler* wipe, CommandHandlerPtr inner)
      : wipe_(wipe), inner_(std::move(inner)) {}
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;
  bool ChangesState() const override { return inner_->ChangesState(); }

 private:
  const WipeHandler* wipe_;
  CommandHandlerPtr inner_;
};

}  // namespace nodeward::wipe

#endif  // NODEWARD_AGENT_WIPE_WIPE_H_
