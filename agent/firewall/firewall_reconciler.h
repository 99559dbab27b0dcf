#ifndef NODEWARD_AGENT_FIREWALL_FIREWALL_RECONCILER_H_
#define NODEWARD_AGENT_FIREWALL_FIREWALL_RECONCILER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/command/command_handler.h"
#include "agent/firewall/firewall_spec.h"
#include "agent/firewall/ruleset_builder.h"
#include "nodeward/v1/command.pb.h"
#include "platform/clock.h"
#include "platform/conntrack.h"
#include "platform/file_system.h"
#include "platform/packet_filter.h"

namespace nodeward::firewall {

// The ApplyFirewall command as a FirewallSpec, whose CIDRs view the
// command's own strings: `command` must outlive the spec. INVALID_ARGUMENT
// for an unspecified protocol or a port above 65535 in `last`.
absl::StatusOr<FirewallSpec> FromProto(const nodeward::v1::ApplyFirewall& command);

struct FirewallStatus {
  uint64_t generation = 0;  // in force (kernel)
  // The highest generation ever applied, unconfirmed and rolled-back ones
  // included: the next ApplyFirewall must exceed it.
  uint64_t highest_generation = 0;
  bool awaiting_confirmation = false;
  uint64_t rollbacks = 0;
  std::string last_rollback;
  std::string content_hash;  // of the table as last verified/committed
  uint64_t ipv4_intervals = 0;
  uint64_t ipv6_intervals = 0;
  uint64_t drift_repairs = 0;
  std::string last_drift;
  absl::Time last_apply = absl::InfinitePast();
  absl::Time last_verified = absl::InfinitePast();
  std::string error;  // kernel not in the desired state (empty when it is)
  // Other tables that can drop what ours accepts (threats.md case 37): our
  // accept cannot override a drop elsewhere, so this is reported.
  std::vector<std::string> foreign_drops;
  // Tracked inbound connections the desired state forbids, deleted from
  // conntrack (after drift repairs and cutting applies); the last one said.
  uint64_t connections_cut = 0;
  std::string last_cut;
};

// Owns the firewall: the desired state (persisted), the generation in
// force, commit-confirmed deadlines, drift repair, and the PacketFilter.
// Handles ApplyFirewall and ConfirmFirewall. Thread-safe.
//
// Every change to the kernel goes through one loop: plan the smallest
// transaction from what the kernel is known to hold to what is desired,
// commit it guarded by the ruleset generation, and on a conflict with
// another writer or a lost ack re-read the table and plan again (at most
// 5 times).
class FirewallReconciler final : public CommandHandler {
 public:
  FirewallReconciler(platform::PacketFilter* filter, platform::FileSystem* fs,
                     platform::Clock* clock, std::string state_path, ManagementAccess management,
                     size_t max_per_shard = kMaxShardIntervals);

  // Boot: brings the kernel to the last *confirmed* state, or the
  // management-only baseline if there is none (an unconfirmed apply does not
  // survive a restart: that is a rollback). Reads the table first, so a
  // restart with an unchanged state changes nothing in the kernel. DATA_LOSS
  // if the state file is corrupt (the baseline is applied, so management
  // access stays open).
  // The table name recorded with the state (for the boot fallback).
  void set_table(std::string table) { table_ = std::move(table); }
  absl::Status Restore();

  // ApplyFirewall: validate -> (dry run: report the diff) -> one
  // transaction -> persist (or put the previous state back). With
  // confirm_within_seconds the new state is pending until confirmed.
  // ConfirmFirewall: makes the pending generation the confirmed state.
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;

  // Rolls a pending apply back to the confirmed state once its deadline has
  // passed. Called by the agent's main loop every second.
  absl::Status CheckDeadline(absl::Time now);

  // Reads the table back and repairs any difference from the desired state
  // (counted as drift). `why` says what prompted the check.
  absl::Status Verify(const std::string& why);

  // Ruleset changes seen by the netlink monitor: a change to the agent's
  // table by anyone else (or lost events) triggers Verify at once; other
  // writers' changes elsewhere only advance the known generation.
  absl::Status OnEvents(const std::vector<platform::FilterEvent>& events);

  // ctnetlink, to delete the tracked connections the desired state forbids
  // (after every drift repair, and on an ApplyFirewall that asks). Without
  // one (unit tests of other things) nothing is cut. Set before Restore.
  void set_conntrack(platform::Conntrack* conntrack) { conntrack_ = conntrack; }

  FirewallStatus status() const;
  uint64_t generation() const { return status().generation; }

 private:
  struct Pending {
    ValidatedFirewall state;
    std::string command;  // serialized ApplyFirewall
    absl::Time deadline;
  };
  absl::StatusOr<nodeward::v1::CommandResult> ApplyLocked(const nodeward::v1::ApplyFirewall& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<nodeward::v1::CommandResult> ConfirmLocked(uint64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Persist(const std::string& confirmed_command, uint64_t confirmed_generation,
                       uint64_t highest) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const ValidatedFirewall* InForce() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings the kernel to `desired`; `summary` gets what was changed.
  absl::Status SyncLocked(platform::FilterRuleset desired, std::string* summary)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RollBackLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `read`: read the table back first; false when known_ already says what
  // the kernel holds (the table was just deleted), which saves the read-back
  // from the window in which the table is missing.
  absl::Status VerifyLocked(const std::string& why, bool read = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the conntrack entries of inbound connections `desired` would not
  // accept as new; the number deleted. Keeps cut_pending_ set on failure.
  absl::StatusOr<size_t> CutForbiddenLocked(const platform::FilterRuleset& desired,
                                            const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateDigestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ProbeForeignDropsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Management access is in every ruleset the agent commits (checked in
  // userspace before each commit, threats.md case 31).
  absl::Status CheckManagement(const platform::FilterRuleset& r) const;

  platform::PacketFilter* const filter_;
  platform::Conntrack* conntrack_ = nullptr;
  platform::FileSystem* const fs_;
  platform::Clock* const clock_;
  const std::string state_path_;
  std::string table_ = "nodeward";
  const ManagementAccess management_;
  const size_t max_per_shard_;
  mutable absl::Mutex mu_;
  std::optional<ValidatedFirewall> confirmed_ ABSL_GUARDED_BY(mu_);
  std::string confirmed_command_ ABSL_GUARDED_BY(mu_);
  uint64_t confirmed_generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t highest_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<Pending> pending_ ABSL_GUARDED_BY(mu_);
  // A rollback at the deadline failed: retried at every CheckDeadline.
  bool rollback_failed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t rolled_back_generation_ ABSL_GUARDED_BY(mu_) = 0;
  // What the kernel is known to hold (valid until another writer commits).
  platform::KernelTable known_ ABSL_GUARDED_BY(mu_);
  bool known_valid_ ABSL_GUARDED_BY(mu_) = false;
  mutable FirewallStatus stats_ ABSL_GUARDED_BY(mu_);
  // A cut is owed (after a repair or a cutting apply) and has not succeeded.
  bool cut_pending_ ABSL_GUARDED_BY(mu_) = false;
  std::string cut_why_ ABSL_GUARDED_BY(mu_);
  mutable bool digest_dirty_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nodeward::firewall

#endif  // NODEWARD_AGENT_FIREWALL_FIREWALL_RECONCILER_H_
