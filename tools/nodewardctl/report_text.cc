#include "tools/nodewardctl/report_text.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace nodeward {
namespace {

using nodeward::v1::Condition;
using nodeward::v1::HealthReport;

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "never";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

std::string Mib(uint64_t bytes) { return absl::StrCat(bytes >> 20, " MiB"); }

void PrintFirewall(const nodeward::v1::FirewallHealth& f, std::ostream& out) {
  if (!f.enabled()) {
    out << "firewall:       disabled\n";
    return;
  }
  out << "firewall:       generation " << f.generation()
      << (f.awaiting_confirmation() ? " (awaiting confirmation)" : "");
  if (f.highest_generation() > f.generation()) {
    out << " (highest applied " << f.highest_generation() << ": the next must exceed it)";
  }
  if (f.rollbacks() != 0) out << ", " << f.rollbacks() << " rollbacks; last: " << f.last_rollback();
  out << "\n  kernel table: " << f.ipv4_intervals() << " IPv4 + " << f.ipv6_intervals()
      << " IPv6 intervals, sha256 " << f.content_hash().substr(0, 16) << "…, verified "
      << FormatTime(f.last_verified()) << "\n"
      << "  drift repairs: " << f.drift_repairs() << (f.last_drift().empty() ? "" : "; last: ")
      << f.last_drift() << "\n";
  if (f.connections_cut() != 0) {
    out << "  connections cut: " << f.connections_cut() << "; last: " << f.last_cut() << "\n";
  }
  if (!f.error().empty()) out << "  error:        " << f.error() << "\n";
}

void PrintVolumes(const HealthReport& r, std::ostream& out) {
  out << "volumes:        " << (r.volumes().empty() ? std::string("none")
                                                    : absl::StrCat(r.volumes_size()))
      << "\n";
  for (const auto& v : r.volumes()) {
    out << "  " << v.volume_id() << "  " << nodeward::v1::VolumeStatus::State_Name(v.state())
        << "  " << v.device() << " -> " << (v.device_path().empty() ? "?" : v.device_path())
        << "  /dev/mapper/" << v.mapper_name() << "  " << v.filesystem() << " on "
        << v.mount_point();
    if (v.size_bytes() != 0) out << "  " << Mib(v.used_bytes()) << " of " << Mib(v.size_bytes()) << " used";
    if (!v.cipher().empty()) out << "  " << v.cipher() << "/" << v.key_bits();
    out << "\n";
    if (!v.reason().empty()) out << "    " << v.reason() << "\n";
  }
}

void PrintHost(const nodeward::v1::HostHealth& h, std::ostream& out) {
  if (!h.has_sampled_at()) {
    out << "host:           not sampled\n";
    return;
  }
  out << "host:           load " << absl::StrFormat("%.2f %.2f %.2f", h.load1(), h.load5(), h.load15())
      << " on " << h.cpus() << " CPUs, memory " << Mib(h.memory_available_bytes()) << " of "
      << Mib(h.memory_total_bytes()) << " available, up " << h.uptime_seconds() << " s\n"
      << "  clock:        " << (h.clock_synchronised() ? "synchronised" : "NOT synchronised")
      << " (max error " << h.clock_max_error_us() << " us)\n";
  for (const auto& d : h.disks()) {
    out << "  disk:         " << d.role() << " " << d.path() << ": " << Mib(d.available_bytes())
        << " of " << Mib(d.total_bytes()) << " available\n";
  }
}

}  // namespace

void PrintHealthText(const HealthReport& r, std::ostream& out) {
  out << "nodeward-agent " << r.version() << "  node " << r.node_id() << "  boot " << r.boot_id()
      << "\n"
      << "state:          " << HealthReport::State_Name(r.state())
      << (r.accepting_commands() ? " (accepting commands)" : " (NOT accepting commands)") << "\n";
  if (r.conditions().empty()) {
    out << "attention:      nothing\n";
  } else {
    out << "attention (most severe first):\n";
    for (const Condition& c : r.conditions()) {
      out << "  " << Condition::Severity_Name(c.severity()) << " " << Condition::Type_Name(c.type())
          << (c.subject().empty() ? "" : " [" + c.subject() + "]")
          << (c.blocks_commands() ? " (blocks commands)" : "") << " since " << FormatTime(c.since())
          << "\n    " << c.message() << "\n";
    }
  }
  const auto& cmd = r.commands();
  out << "started:        " << FormatTime(r.started_at()) << "\n"
      << "last sequence:  " << cmd.high_water_mark() << "\n"
      << "commands:       " << cmd.applied() << " applied, " << cmd.rejected() << " rejected, "
      << cmd.replayed() << " replayed\n"
      << "trusted keys:   " << cmd.trusted_keys() << " (loaded " << FormatTime(cmd.trust_loaded_at())
      << ")\n";
  if (!cmd.last_reload_error().empty()) {
    out << "last reload:    FAILED: " << cmd.last_reload_error() << "\n";
  }
  PrintFirewall(r.firewall(), out);
  PrintVolumes(r, out);
  const auto& w = r.wipe();
  out << "wipe:           " << nodeward::v1::WipeHealth::State_Name(w.state())
      << (w.detail().empty() ? "" : ": " + w.detail()) << "\n";
  std::string b64;
  absl::Base64Escape(w.signing_public_key(), &b64);
  out << "signing key:    "
      << (w.signing_key_id().empty()
              ? std::string("NOT LOADED")
              : absl::StrCat(w.signing_key_id(), " (ed25519 ", b64,
                             "; pin it to verify wipe receipts)"))
      << "\n";
  PrintHost(r.host(), out);
  out << "certificates:   " << (r.certificates().empty() ? std::string("none managed")
                                                         : absl::StrCat(r.certificates_size()))
      << "\n";
  for (const auto& c : r.certificates()) {
    out << "  " << c.target() << "  " << nodeward::v1::CertificateHealth::State_Name(c.state());
    if (c.version() != 0) {
      out << "  v" << c.version() << "  not after " << FormatTime(c.not_after()) << ", renew from "
          << FormatTime(c.renewal_due_at()) << "  spki " << c.spki_sha256().substr(0, 16) << "…";
    }
    if (c.pending()) out << "  (a new key awaits its chain)";
    out << "\n";
    if (!c.error().empty()) out << "    " << c.error() << "\n";
  }
}

void PrintStatusText(const nodeward::v1::StatusReport& r, std::ostream& out) {
  PrintHealthText(r.health(), out);
  out << "listening on:   " << r.listen_address() << " (mTLS), " << r.health().commands().health_streams()
      << " health streams\n"
      << "agent uptime:   " << r.uptime_seconds() << " s\n"
      << "recent commands (newest first):\n";
  for (const auto& c : r.recent_commands()) {
    out << "  " << FormatTime(c.time()) << "  seq " << c.sequence() << "  "
        << (c.command_type().empty() ? "?" : c.command_type()) << "  " << c.decision()
        << (c.reason().empty() ? "" : " " + c.reason()) << "  "
        << (c.command_id().empty() ? "-" : c.command_id()) << "\n";
  }
}

}  // namespace nodeward
