#include "agent/firewall/firewall_reconciler.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/common/status_macros.h"
#include "nodeward/v1/state.pb.h"

namespace nodeward::firewall {
namespace {

using platform::FilterInterval;
using platform::FilterRule;
using platform::FilterRuleset;
using platform::FilterSet;

std::vector<FilterInterval> ToFilter(const std::vector<Interval>& in) {
  std::vector<FilterInterval> out;
  out.reserve(in.size());
  for (const Interval& i : in) out.push_back({i.first, i.last});
  return out;
}

// ICMP types IPv4 needs: destination unreachable (incl. PMTU "fragmentation
// needed"), echo request, time exceeded, parameter problem.
const std::vector<uint8_t> kIcmpTypes = {3, 8, 11, 12};
// ICMPv6: errors incl. packet too big (1-4), echo request (128), and
// neighbour discovery: router solicit/advert, neighbour solicit/advert (133-136).
const std::vector<uint8_t> kIcmpV6Types = {1, 2, 3, 4, 128, 133, 134, 135, 136};

void AddSourceRules(FilterRuleset* r, const std::string& set_prefix,
                    const std::vector<Interval>& v4, const std::vector<Interval>& v6,
                    FilterRule::Protocol proto, const std::vector<platform::FilterPortRange>& ports,
                    const std::string& comment) {
  for (bool ipv6 : {false, true}) {
    const auto& iv = ipv6 ? v6 : v4;
    if (iv.empty()) continue;
    FilterSet s{absl::StrCat(set_prefix, ipv6 ? "_v6" : "_v4"), ipv6, ToFilter(iv)};
    FilterRule rule;
    rule.kind = FilterRule::Kind::kSource;
    rule.ipv6 = ipv6;
    rule.source_set = s.name;
    rule.protocol = proto;
    rule.ports = ports;
    rule.comment = comment;
    r->sets.push_back(std::move(s));
    r->rules.push_back(std::move(rule));
  }
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
        return absl::InvalidArgumentError(
            absl::StrCat("firewall service '", s.name().substr(0, 40), "': protocol is required"));
    }
    for (const auto& p : s.ports()) out.ports.push_back({p.first(), p.last() == 0 ? p.first() : p.last()});
    out.allowed_cidrs.assign(s.allowed_cidrs().begin(), s.allowed_cidrs().end());
    out.allow_all = s.allow_all();
    f.services.push_back(std::move(out));
  }
  return f;
}

FilterRuleset BuildRuleset(const ManagementAccess& m, const ValidatedFirewall* state) {
  FilterRuleset r;
  FilterRule lo;
  lo.kind = FilterRule::Kind::kLoopback;
  lo.comment = "nodeward: loopback";
  r.rules.push_back(lo);
  FilterRule est;
  est.kind = FilterRule::Kind::kEstablished;
  est.comment = "nodeward: replies and established connections";
  r.rules.push_back(est);
  FilterRule icmp;
  icmp.kind = FilterRule::Kind::kIcmp;
  icmp.icmp_types = kIcmpTypes;
  icmp.comment = "nodeward: ICMP IPv4 needs (unreachable/PMTU, echo, time exceeded)";
  r.rules.push_back(icmp);
  FilterRule icmp6;
  icmp6.kind = FilterRule::Kind::kIcmpV6;
  icmp6.icmp_types = kIcmpV6Types;
  icmp6.comment = "nodeward: ICMPv6 errors, echo, neighbour discovery";
  r.rules.push_back(icmp6);

  std::vector<platform::FilterPortRange> mgmt_ports;
  for (uint16_t p : m.tcp_ports) mgmt_ports.push_back({p, p});
  AddSourceRules(&r, "mgmt", Normalise(m.cidrs, Family::kIpv4), Normalise(m.cidrs, Family::kIpv6),
                 FilterRule::Protocol::kTcp, mgmt_ports, "nodeward: management access (local config)");
  if (state == nullptr) return r;

  AddSourceRules(&r, "peers", state->peers_v4, state->peers_v6, FilterRule::Protocol::kAny, {},
                 "nodeward: internal peers");
  for (const Service& s : state->services) {
    const auto proto = s.protocol == Protocol::kTcp ? FilterRule::Protocol::kTcp
                                                    : FilterRule::Protocol::kUdp;
    std::vector<platform::FilterPortRange> ports;
    for (const PortRange& p : s.ports) {
      ports.push_back({static_cast<uint16_t>(p.first), static_cast<uint16_t>(p.last)});
    }
    const std::string comment = absl::StrCat("nodeward: service ", s.name);
    if (s.allow_all) {
      for (bool ipv6 : {false, true}) {
        FilterRule rule;
        rule.kind = FilterRule::Kind::kSource;
        rule.ipv6 = ipv6;
        rule.protocol = proto;
        rule.ports = ports;
        rule.comment = comment + " (allow_all)";
        r.rules.push_back(std::move(rule));
      }
      continue;
    }
    AddSourceRules(&r, absl::StrCat("svc_", absl::StrReplaceAll(s.name, {{"-", "_"}})),
                   s.allowed_v4, s.allowed_v6, proto, ports, comment);
  }
  return r;
}

FirewallReconciler::FirewallReconciler(platform::PacketFilter* filter, platform::FileSystem* fs,
                                       platform::Clock* clock, std::string state_path,
                                       ManagementAccess management)
    : filter_(filter),
      fs_(fs),
      clock_(clock),
      state_path_(std::move(state_path)),
      management_(std::move(management)) {}

FirewallStatus FirewallReconciler::status() const {
  absl::MutexLock lock(&mu_);
  FirewallStatus s;
  s.generation = pending_.has_value() ? pending_->state.generation : confirmed_generation_;
  s.awaiting_confirmation = pending_.has_value();
  s.rollbacks = rollbacks_;
  s.last_rollback = last_rollback_;
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
  return fs_->WriteFileAtomically(state_path_, state.SerializeAsString(), 0600);
}

absl::Status FirewallReconciler::Restore() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> raw = fs_->ReadFile(state_path_);
  if (absl::IsNotFound(raw.status())) return filter_->ReplaceTable(BuildRuleset(management_, nullptr));
  if (!raw.ok()) return raw.status();
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
    return filter_->ReplaceTable(BuildRuleset(management_, nullptr));
  }
  if (!v.ok()) {
    // Keep management access open whatever happened to the file.
    RETURN_IF_ERROR(filter_->ReplaceTable(BuildRuleset(management_, nullptr)));
    return absl::DataLossError(absl::StrCat("firewall state ", state_path_,
                                            " is corrupt; management-only ruleset applied"));
  }
  RETURN_IF_ERROR(filter_->ReplaceTable(BuildRuleset(management_, &*v)));
  confirmed_generation_ = state.generation();
  highest_generation_ = std::max(state.highest_generation(), state.generation());
  confirmed_command_ = state.applied();
  confirmed_ = std::move(v).value();
  return absl::OkStatus();
}

absl::StatusOr<nodeward::v1::CommandResult> FirewallReconciler::Apply(
    const VerifiedCommand& command) {
  absl::MutexLock lock(&mu_);
  if (command.command.has_confirm_firewall()) {
    return ConfirmLocked(command.command.confirm_firewall().generation());
  }
  return ApplyLocked(command.command.apply_firewall());
}

absl::StatusOr<nodeward::v1::CommandResult> FirewallReconciler::ApplyLocked(
    const nodeward::v1::ApplyFirewall& c) {
  if (c.confirm_within_seconds() > 3600) {
    return absl::InvalidArgumentError("firewall: confirm_within_seconds above 3600");
  }
  ASSIGN_OR_RETURN(FirewallSpec spec, FromProto(c));
  ASSIGN_OR_RETURN(ValidatedFirewall v, ValidateFirewall(spec, highest_generation_));
  FilterRuleset ruleset = BuildRuleset(management_, &v);

  nodeward::v1::CommandResult result;
  auto* fr = result.mutable_firewall();
  fr->set_generation(v.generation);
  fr->set_dry_run(c.dry_run());
  for (const auto& n : v.normalised) fr->add_normalised(n);
  fr->set_rules(static_cast<uint32_t>(ruleset.rules.size()));
  for (const FilterSet& s : ruleset.sets) {
    if (s.ipv6) {
      fr->set_ipv6_intervals(fr->ipv6_intervals() + static_cast<uint32_t>(s.intervals.size()));
    } else {
      fr->set_ipv4_intervals(fr->ipv4_intervals() + static_cast<uint32_t>(s.intervals.size()));
    }
  }
  if (c.dry_run()) return result;

  RETURN_IF_ERROR(filter_->ReplaceTable(ruleset));
  const bool confirm = c.confirm_within_seconds() > 0;
  const std::string serialized = c.SerializeAsString();
  // An unconfirmed apply keeps the confirmed state on disk: a restart before
  // the confirmation is a rollback.
  absl::Status saved = confirm ? Persist(confirmed_command_, confirmed_generation_, v.generation)
                               : Persist(serialized, v.generation, v.generation);
  if (!saved.ok()) {
    // Kernel and disk must not disagree about what is in force.
    (void)filter_->ReplaceTable(BuildRuleset(management_, InForce()));
    return absl::UnavailableError(absl::StrCat("persist firewall state: ", saved.message(),
                                               "; previous ruleset restored"));
  }
  highest_generation_ = v.generation;
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
    return absl::FailedPreconditionError(absl::StrCat(
        "firewall: nothing awaits confirmation at generation ", generation,
        pending_.has_value() ? absl::StrCat(" (pending: ", pending_->state.generation, ")")
                             : std::string(" (it may have been rolled back)")));
  }
  RETURN_IF_ERROR(Persist(pending_->command, generation, highest_generation_));
  confirmed_generation_ = generation;
  confirmed_command_ = pending_->command;
  confirmed_ = std::move(pending_->state);
  pending_.reset();
  result.mutable_firewall()->set_confirmed(true);
  return result;
}

absl::Status FirewallReconciler::CheckDeadline(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!pending_.has_value() || now < pending_->deadline) return absl::OkStatus();
  RETURN_IF_ERROR(filter_->ReplaceTable(
      BuildRuleset(management_, confirmed_.has_value() ? &*confirmed_ : nullptr)));
  ++rollbacks_;
  last_rollback_ = absl::StrCat("generation ", pending_->state.generation,
                                " was not confirmed in time; rolled back to generation ",
                                confirmed_generation_);
  pending_.reset();
  return absl::OkStatus();
}

}  // namespace nodeward::firewall
