#include "agent/firewall/firewall_reconciler.h"

#include <openssl/evp.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/common/crypto.h"
#include "agent/common/logging.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "nodeward/v1/state.pb.h"
#include "platform/filter_eval.h"
#include "platform/filter_plan.h"

namespace nodeward::firewall {
namespace {

using platform::FilterRuleset;
using platform::FilterSet;

constexpr int kSyncAttempts = 5;

std::string ContentHash(const FilterRuleset& r) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  platform::Canonical(r, [&](absl::string_view piece) {
    EVP_DigestUpdate(ctx.get(), piece.data(), piece.size());
  });
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  return HexEncode(absl::string_view(reinterpret_cast<const char*>(md), n));
}

}  // namespace

absl::StatusOr<FirewallSpec> FromProto(const nodeward::v1::ApplyFirewall& c) {
  FirewallSpec f;
  f.generation = c.generation();
  f.private_only = c.private_only();
  f.internal_peers.assign(c.internal_peers().begin(), c.internal_peers().end());
  for (const auto& s : c.services()) {
    ServiceSpec out;
    out.name = s.name();
    switch (s.protocol()) {
      case nodeward::v1::PROTOCOL_TCP:
        out.protocol = Protocol::kTcp;
        break;
      case nodeward::v1::PROTOCOL_UDP:
        out.protocol = Protocol::kUdp;
        break;
      default:
        return WithReason(absl::InvalidArgumentError(absl::StrCat(
                              "firewall service '", s.name().substr(0, 40), "': protocol is required")),
                          reason::kFirewallSpecInvalid);
    }
    for (const auto& p : s.ports()) out.ports.push_back({p.first(), p.last() == 0 ? p.first() : p.last()});
    out.allowed_cidrs.assign(s.allowed_cidrs().begin(), s.allowed_cidrs().end());
    out.allowed_packed = s.allowed_cidrs_packed();
    out.allow_all = s.allow_all();
    f.services.push_back(std::move(out));
  }
  return f;
}

FirewallReconciler::FirewallReconciler(platform::PacketFilter* filter, platform::FileSystem* fs,
                                       platform::Clock* clock, std::string state_path,
                                       ManagementAccess management, size_t max_per_shard)
    : filter_(filter),
      fs_(fs),
      clock_(clock),
      state_path_(std::move(state_path)),
      management_(std::move(management)),
      max_per_shard_(max_per_shard) {}

FirewallStatus FirewallReconciler::status() const {
  absl::MutexLock lock(&mu_);
  if (digest_dirty_) {
    stats_.content_hash = ContentHash(known_.ruleset);
    digest_dirty_ = false;
  }
  FirewallStatus s = stats_;
  s.generation = pending_.has_value() ? pending_->state.generation : confirmed_generation_;
  s.awaiting_confirmation = pending_.has_value();
  s.highest_generation = highest_generation_;
  return s;
}

const ValidatedFirewall* FirewallReconciler::InForce() const {
  if (pending_.has_value()) return &pending_->state;
  return confirmed_.has_value() ? &*confirmed_ : nullptr;
}

absl::Status FirewallReconciler::Persist(const std::string& confirmed_command,
                                         uint64_t confirmed_generation, uint64_t highest) {
  nodeward::v1::FirewallState state;
  state.set_applied(confirmed_command);
  state.set_generation(confirmed_generation);
  state.set_highest_generation(highest);
  for (const Cidr& c : management_.cidrs) state.add_management_cidrs(FormatCidr(c));
  for (uint16_t p : management_.tcp_ports) state.add_management_ports(p);
  state.set_table(table_);
  return fs_->WriteFileAtomically(state_path_, state.SerializeAsString(), 0600);
}

void FirewallReconciler::UpdateDigestLocked() {
  // Counted now (cheap), hashed when someone asks (O(size of the table)).
  platform::ElementCounts n = platform::CountElements(known_.ruleset);
  stats_.ipv4_intervals = n.ipv4;
  stats_.ipv6_intervals = n.ipv6;
  digest_dirty_ = true;
}

absl::Status FirewallReconciler::CheckManagement(const FilterRuleset& r) const {
  for (bool ipv6 : {false, true}) {
    bool family_wanted = false;
    for (const Cidr& c : management_.cidrs) family_wanted |= (c.family == Family::kIpv6) == ipv6;
    if (!family_wanted) continue;
    const std::string base = ipv6 ? "mgmt_v6" : "mgmt_v4";
    for (uint16_t port : management_.tcp_ports) {
      bool found = false;
      for (const platform::FilterRule& rule : r.rules) {
        found |= rule.kind == platform::FilterRule::Kind::kSource && rule.ipv6 == ipv6 &&
                 rule.protocol == platform::FilterRule::Protocol::kTcp &&
                 (rule.source_set == base || rule.source_map == base + "_map") &&
                 rule.ports.has_value() && rule.ports->first <= port && port <= rule.ports->last;
      }
      if (!found) {
        return WithReason(absl::InternalError(absl::StrCat(
                              "firewall: refusing a ruleset without management access (", base,
                              " tcp port ", port, ")")),
                          reason::kFirewallManagementAccessMissing);
      }
    }
  }
  return absl::OkStatus();
}

void FirewallReconciler::ProbeForeignDropsLocked() {
  absl::StatusOr<std::vector<std::string>> drops = filter_->ForeignDrops();
  if (drops.ok()) stats_.foreign_drops = std::move(drops).value();
}

absl::Status FirewallReconciler::SyncLocked(FilterRuleset desired, std::string* summary) {
  RETURN_IF_ERROR(CheckManagement(desired));
  absl::Status last;
  for (int attempt = 0; attempt < kSyncAttempts; ++attempt) {
    if (!known_valid_) {
      absl::StatusOr<platform::KernelTable> read = filter_->Read();
      if (!read.ok()) return read.status();
      known_ = std::move(read).value();
      known_valid_ = true;
    }
    // New sets are pointed to, not copied: `desired` outlives the commit.
    platform::FilterChange change = platform::PlanChange(known_, desired, /*by_reference=*/true);
    if (change.empty()) {
      if (summary != nullptr) *summary = "no change";
      UpdateDigestLocked();
      return absl::OkStatus();
    }
    absl::StatusOr<uint32_t> genid = filter_->Commit(change, known_.genid);
    if (genid.ok()) {
      if (summary != nullptr) *summary = platform::Describe(change);
      known_.genid = *genid;
      known_.exists = true;
      known_.structure_ok = true;
      known_.ruleset = std::move(desired);
      UpdateDigestLocked();
      return absl::OkStatus();
    }
    last = genid.status();
    // Another writer came in between, or the acks were lost: what the
    // kernel holds is unknown, so read it again and plan again.
    if (absl::IsAborted(last) || absl::IsUnknown(last)) {
      known_valid_ = false;
      continue;
    }
    return last;  // the kernel refused the transaction: nothing changed
  }
  return WithReason(absl::AbortedError(absl::StrCat(
                        "firewall: the kernel table kept changing; gave up after ", kSyncAttempts,
                        " attempts: ", last.message())),
                    reason::kFirewallKernelContended);
}

absl::Status FirewallReconciler::Restore() {
  absl::MutexLock lock(&mu_);
  known_valid_ = false;  // read what is there: an unchanged state changes nothing
  absl::StatusOr<std::string> raw = fs_->ReadFile(state_path_);
  absl::Status result;
  if (absl::IsNotFound(raw.status())) {
    result = SyncLocked(BuildRuleset(management_, nullptr, max_per_shard_), nullptr);
  } else if (!raw.ok()) {
    return raw.status();
  } else {
    nodeward::v1::FirewallState state;
    nodeward::v1::ApplyFirewall applied;
    absl::StatusOr<ValidatedFirewall> v = absl::DataLossError("");
    if (state.ParseFromString(*raw)) {
      if (state.applied().empty()) {
        v = absl::NotFoundError("no confirmed state");
      } else if (applied.ParseFromString(state.applied())) {
        absl::StatusOr<FirewallSpec> spec = FromProto(applied);
        if (spec.ok()) v = ValidateFirewall(*spec, 0);
      }
    }
    if (absl::IsNotFound(v.status())) {
      // Only unconfirmed applies ever happened: baseline, but keep the
      // generation floor so none of them can be replayed.
      highest_generation_ = state.highest_generation();
      result = SyncLocked(BuildRuleset(management_, nullptr, max_per_shard_), nullptr);
    } else if (!v.ok()) {
      // Keep management access open whatever happened to the file.
      RETURN_IF_ERROR(SyncLocked(BuildRuleset(management_, nullptr, max_per_shard_), nullptr));
      return absl::DataLossError(absl::StrCat("firewall state ", state_path_,
                                              " is corrupt; management-only ruleset applied"));
    } else {
      result = SyncLocked(BuildRuleset(management_, &*v, max_per_shard_), nullptr);
      if (result.ok()) {
        confirmed_generation_ = state.generation();
        highest_generation_ = std::max(state.highest_generation(), state.generation());
        confirmed_command_ = state.applied();
        confirmed_ = std::move(v).value();
      }
    }
  }
  if (result.ok()) {
    stats_.last_apply = clock_->Now();
    stats_.last_verified = stats_.last_apply;
    // Record the management access this state runs under (the boot
    // fallback for a broken config), unless it is already there.
    nodeward::v1::FirewallState now;
    if (raw.ok()) (void)now.ParseFromString(*raw);
    std::vector<std::string> cidrs;
    for (const Cidr& c : management_.cidrs) cidrs.push_back(FormatCidr(c));
    const bool recorded =
        raw.ok() && now.table() == table_ &&
        std::vector<std::string>(now.management_cidrs().begin(), now.management_cidrs().end()) ==
            cidrs &&
        now.management_ports_size() == static_cast<int>(management_.tcp_ports.size());
    if (!recorded) {
      if (absl::Status s = Persist(confirmed_command_, confirmed_generation_, highest_generation_);
          !s.ok()) {
        NW_LOG_WARNING("record the firewall's management access in ", state_path_, ": ",
                       s.message());
      }
    }
  }
  ProbeForeignDropsLocked();
  return result;
}

absl::StatusOr<nodeward::v1::CommandResult> FirewallReconciler::Apply(
    const VerifiedCommand& command) {
  absl::MutexLock lock(&mu_);
  // What the kernel refused (netlink errors) has no reason of its own.
  absl::StatusOr<nodeward::v1::CommandResult> r =
      command.command.has_confirm_firewall()
          ? ConfirmLocked(command.command.confirm_firewall().generation())
          : ApplyLocked(command.command.apply_firewall());
  if (!r.ok()) return WithDefaultReason(r.status(), reason::kFirewallKernelFailed);
  return r;
}

absl::StatusOr<nodeward::v1::CommandResult> FirewallReconciler::ApplyLocked(
    const nodeward::v1::ApplyFirewall& c) {
  if (c.confirm_within_seconds() > 3600) {
    return WithReason(absl::InvalidArgumentError("firewall: confirm_within_seconds above 3600"),
                      reason::kFirewallSpecInvalid);
  }
  ASSIGN_OR_RETURN(FirewallSpec spec, FromProto(c));
  ASSIGN_OR_RETURN(ValidatedFirewall v, ValidateFirewall(spec, highest_generation_));
  spec = FirewallSpec();  // the CIDR texts are no longer needed
  FilterRuleset ruleset = BuildRuleset(management_, &v, max_per_shard_);

  nodeward::v1::CommandResult result;
  auto* fr = result.mutable_firewall();
  fr->set_generation(v.generation);
  fr->set_dry_run(c.dry_run());
  for (const auto& n : v.normalised) fr->add_normalised(n);
  fr->set_rules(static_cast<uint32_t>(ruleset.rules.size()));
  platform::ElementCounts counts = platform::CountElements(ruleset);
  fr->set_ipv4_intervals(static_cast<uint32_t>(counts.ipv4));
  fr->set_ipv6_intervals(static_cast<uint32_t>(counts.ipv6));
  if (c.dry_run()) {
    // The diff against what the kernel is known to hold; nothing changes.
    if (!known_valid_) {
      absl::StatusOr<platform::KernelTable> read = filter_->Read();
      if (!read.ok()) return read.status();
      known_ = std::move(read).value();
      known_valid_ = true;
    }
    fr->set_plan(platform::Describe(platform::PlanChange(known_, ruleset)));
    return result;
  }

  std::string summary;
  RETURN_IF_ERROR(SyncLocked(std::move(ruleset), &summary));
  fr->set_plan(summary);
  const bool confirm = c.confirm_within_seconds() > 0;
  const std::string serialized = c.SerializeAsString();
  // An unconfirmed apply keeps the confirmed state on disk: a restart before
  // the confirmation is a rollback.
  absl::Status saved = confirm ? Persist(confirmed_command_, confirmed_generation_, v.generation)
                               : Persist(serialized, v.generation, v.generation);
  if (!saved.ok()) {
    // Kernel and disk must not disagree about what is in force.
    absl::Status back = SyncLocked(BuildRuleset(management_, InForce(), max_per_shard_), nullptr);
    if (!back.ok()) stats_.error = absl::StrCat("restore after a failed persist: ", back.message());
    return WithReason(absl::UnavailableError(absl::StrCat("persist firewall state: ",
                                                          saved.message(),
                                                          "; previous ruleset restored")),
                      reason::kFirewallStateNotPersisted);
  }
  highest_generation_ = v.generation;
  stats_.last_apply = clock_->Now();
  stats_.error.clear();
  if (c.cut_forbidden_connections() || cut_pending_) {
    if (c.cut_forbidden_connections()) {
      cut_pending_ = true;
      cut_why_ = absl::StrCat("as generation ", v.generation, " asked");
    }
    absl::StatusOr<size_t> cut = CutForbiddenLocked(known_.ruleset, cut_why_);
    if (cut.ok()) {
      fr->set_connections_cut(static_cast<uint32_t>(*cut));
    } else {
      fr->set_plan(absl::StrCat(summary, "; cutting forbidden connections failed (retried): ",
                                cut.status().message()));
    }
  }
  if (confirm) {
    fr->set_awaiting_confirmation(true);
    pending_ = Pending{std::move(v), serialized,
                       clock_->Now() + absl::Seconds(c.confirm_within_seconds())};
  } else {
    confirmed_generation_ = v.generation;
    confirmed_command_ = serialized;
    confirmed_ = std::move(v);
    pending_.reset();
  }
  return result;
}

absl::StatusOr<nodeward::v1::CommandResult> FirewallReconciler::ConfirmLocked(uint64_t generation) {
  nodeward::v1::CommandResult result;
  result.mutable_firewall()->set_generation(generation);
  if (!pending_.has_value() || pending_->state.generation != generation) {
    if (!pending_.has_value() && confirmed_generation_ == generation && generation != 0) {
      result.mutable_firewall()->set_confirmed(true);  // already confirmed
      return result;
    }
    return WithReason(
        absl::FailedPreconditionError(absl::StrCat(
            "firewall: nothing awaits confirmation at generation ", generation,
            pending_.has_value() ? absl::StrCat(" (pending: ", pending_->state.generation, ")")
                                 : std::string(" (it may have been rolled back)"))),
        reason::kFirewallNothingToConfirm);
  }
  if (absl::Status s = Persist(pending_->command, generation, highest_generation_); !s.ok()) {
    return WithReason(s, reason::kFirewallStateNotPersisted);
  }
  confirmed_generation_ = generation;
  confirmed_command_ = pending_->command;
  confirmed_ = std::move(pending_->state);
  pending_.reset();
  result.mutable_firewall()->set_confirmed(true);
  return result;
}

absl::Status FirewallReconciler::CheckDeadline(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (rollback_failed_) return RollBackLocked();  // retried every tick
  if (!pending_.has_value() || now < pending_->deadline) return absl::OkStatus();
  // From the deadline on, the confirmed state is the desired one: it can no
  // longer be confirmed, and the periodic read-back repairs toward the
  // confirmed state, never toward the expired one.
  const uint64_t expired = pending_->state.generation;
  pending_.reset();
  ++stats_.rollbacks;
  stats_.last_rollback = absl::StrCat("generation ", expired,
                                      " was not confirmed in time; rolled back to generation ",
                                      confirmed_generation_);
  stats_.last_apply = now;
  rollback_failed_ = true;
  rolled_back_generation_ = expired;
  return RollBackLocked();
}

absl::Status FirewallReconciler::RollBackLocked() {
  absl::Status s = SyncLocked(
      BuildRuleset(management_, confirmed_.has_value() ? &*confirmed_ : nullptr, max_per_shard_),
      nullptr);
  if (!s.ok()) {
    // Visible (health is DEGRADED with FIREWALL_OUT_OF_SYNC) and retried.
    stats_.error = absl::StrCat("roll back unconfirmed generation ", rolled_back_generation_,
                                " to generation ", confirmed_generation_, ": ", s.message(),
                                " (retried every second)");
    return s;
  }
  rollback_failed_ = false;
  stats_.error.clear();
  return absl::OkStatus();
}

absl::Status FirewallReconciler::Verify(const std::string& why) {
  absl::MutexLock lock(&mu_);
  return VerifyLocked(why);
}

absl::Status FirewallReconciler::VerifyLocked(const std::string& why, bool read) {
  if (read || !known_valid_) {
    absl::StatusOr<platform::KernelTable> table = filter_->Read();
    if (!table.ok()) {
      stats_.error = absl::StrCat("read back: ", table.status().message());
      return table.status();
    }
    known_ = std::move(table).value();
    known_valid_ = true;
    ProbeForeignDropsLocked();
  }
  const FilterRuleset desired = BuildRuleset(management_, InForce(), max_per_shard_);
  const platform::FilterChange drift = platform::PlanChange(known_, desired);
  stats_.last_verified = clock_->Now();
  if (!drift.empty()) {
    const std::string found = known_.exists ? platform::Describe(drift) : "table missing";
    std::string summary;
    absl::Status repaired;
    // Wall time, for the report only (nothing depends on it).
    const absl::Time started = absl::Now();
    std::string timing;
    if (!known_.exists && InForce() != nullptr) {
      // Nothing filters at all: close first with the small management-only
      // baseline (one short transaction, policy drop), then add the
      // services' allow-lists (a 50k-entry table is one slow transaction:
      // 160 ms to over a second measured). Allowed sources wait for the
      // second transaction; nobody gets in unfiltered meanwhile.
      repaired = SyncLocked(BuildRuleset(management_, nullptr, max_per_shard_), nullptr);
      timing = absl::StrFormat("; closed by the baseline in %.1f ms",
                               absl::ToDoubleMilliseconds(absl::Now() - started));
    }
    if (repaired.ok()) repaired = SyncLocked(desired, &summary);
    absl::StrAppend(&timing, absl::StrFormat("; complete in %.1f ms",
                                             absl::ToDoubleMilliseconds(absl::Now() - started)));
    if (!read) ProbeForeignDropsLocked();  // after the repair, not inside the window
    ++stats_.drift_repairs;
    stats_.last_drift = absl::StrCat(absl::FormatTime(stats_.last_verified), ": ", why,
                                     "; repaired (", found, ")", timing);
    if (!repaired.ok()) {
      stats_.error = absl::StrCat("repair drift: ", repaired.message());
      return repaired;
    }
    // Whatever connected while the table was missing or wrong is tracked
    // now, and `ct state established` would keep letting it in.
    cut_pending_ = true;
    cut_why_ = absl::StrCat("after repairing drift (", why, ")");
  } else {
    UpdateDigestLocked();
  }
  stats_.error.clear();
  if (cut_pending_) {
    absl::StatusOr<size_t> cut = CutForbiddenLocked(desired, cut_why_);
    if (!cut.ok()) return cut.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> FirewallReconciler::CutForbiddenLocked(const FilterRuleset& desired,
                                                              const std::string& why) {
  if (conntrack_ == nullptr) {
    cut_pending_ = false;
    return size_t{0};
  }
  absl::StatusOr<std::vector<platform::ConnEntry>> all = conntrack_->List();
  absl::Status failed = all.status();
  size_t cut = 0;
  if (all.ok()) {
    for (const platform::ConnEntry& e : *all) {
      if (!e.inbound || platform::AcceptsNew(desired, e)) continue;
      absl::Status d = conntrack_->Delete(e);
      if (!d.ok()) {
        failed = d;
        break;
      }
      ++cut;
    }
  }
  if (cut > 0) {
    stats_.connections_cut += cut;
    stats_.last_cut = absl::StrCat(absl::FormatTime(clock_->Now()), ": ", cut,
                                   " connection(s) the desired state forbids, ", why);
  }
  if (!failed.ok()) {
    stats_.error = absl::StrCat("cut forbidden connections: ", failed.message());
    return failed;
  }
  cut_pending_ = false;
  return cut;
}

absl::Status FirewallReconciler::OnEvents(const std::vector<platform::FilterEvent>& events) {
  absl::MutexLock lock(&mu_);
  std::string why;
  bool elsewhere = false;
  bool lost = false;
  const platform::FilterEvent* deleted = nullptr;  // the last foreign change, if a delete
  for (const platform::FilterEvent& e : events) {
    if (e.lost) {
      why = "netlink events were lost";
      lost = true;
      continue;
    }
    if (e.own) continue;  // our own commit: known_ already says what it did
    if (!e.touched_table) {
      // Someone else's table: what we know of ours still holds.
      if (known_valid_ && e.genid > known_.genid) known_.genid = e.genid;
      elsewhere = true;
      continue;
    }
    why = absl::StrCat(e.what.empty() ? std::string("table changed") : e.what, " by ",
                       e.process.empty() ? std::string("unknown") : e.process,
                       e.pid != 0 ? absl::StrCat(" (pid ", e.pid, ")") : std::string());
    deleted = e.table_deleted && e.genid != 0 ? &e : nullptr;
  }
  if (why.empty()) {
    if (elsewhere) ProbeForeignDropsLocked();  // a new drop elsewhere is reported at once
    return absl::OkStatus();
  }
  if (deleted != nullptr && !lost && &*deleted == &events.back()) {
    // The table is gone as of that generation: re-create it in one
    // transaction straight away, guarded by that generation (if anyone
    // committed since, the commit is refused and the loop reads back).
    known_ = platform::KernelTable();
    known_.genid = deleted->genid;
    known_valid_ = true;
    return VerifyLocked(why, /*read=*/false);
  }
  return VerifyLocked(why);
}

}  // namespace nodeward::firewall
