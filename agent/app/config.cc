#include "agent/app/config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "agent/command/trust_store.h"
#include "agent/firewall/cidr.h"
#include "agent/common/proto_util.h"
#include "agent/common/status_macros.h"

namespace nodeward {

absl::StatusOr<nodeward::v1::AgentConfig> LoadConfig(platform::FileSystem* fs,
                                                     const std::string& path) {
  ASSIGN_OR_RETURN(std::string json, fs->ReadFile(path));
  nodeward::v1::AgentConfig c;
  RETURN_IF_ERROR(ParseJson(json, &c, absl::StrCat("config file ", path)));
  if (c.node_id().empty()) return absl::InvalidArgumentError("config: node_id is required");
  if (c.listen_address().empty()) {
    return absl::InvalidArgumentError("config: listen_address is required");
  }
  if (c.boot_id_file().empty()) c.set_boot_id_file(kDefaultBootIdFile);
  if (c.state_dir().empty()) c.set_state_dir(kDefaultStateDir);
  if (c.audit_file().empty()) c.set_audit_file(absl::StrCat(c.state_dir(), "/audit.jsonl"));
  if (c.backup_key_dir().empty()) {
    c.set_backup_key_dir(absl::StrCat(c.state_dir(), "/backup-keys"));
  }
  if (c.status_socket().path().empty()) c.mutable_status_socket()->set_path(kDefaultStatusSocket);
  auto* l = c.mutable_limits();
  if (l->max_envelope_bytes() == 0) l->set_max_envelope_bytes(65536);
  // 64 MiB: room for a firewall allow-list of about a million CIDRs.
  if (l->max_envelope_bytes() > (64u << 20)) {
    return absl::InvalidArgumentError("config: limits.max_envelope_bytes above 64 MiB");
  }
  if (l->max_small_envelope_bytes() == 0) l->set_max_small_envelope_bytes(65536);
  if (l->max_small_envelope_bytes() > l->max_envelope_bytes()) {
    l->set_max_small_envelope_bytes(l->max_envelope_bytes());
  }
  if (l->max_queued_bytes() == 0) {
    l->set_max_queued_bytes(std::max<uint64_t>(2ull * l->max_envelope_bytes(), 1u << 20));
  }
  if (l->max_queued_bytes() < l->max_envelope_bytes()) {
    return absl::InvalidArgumentError(
        "config: limits.max_queued_bytes below limits.max_envelope_bytes (no envelope of the "
        "largest size could ever be accepted)");
  }
  if (l->max_signatures() == 0) l->set_max_signatures(8);
  if (l->clock_skew_seconds() == 0) l->set_clock_skew_seconds(300);
  if (l->max_command_lifetime_seconds() == 0) l->set_max_command_lifetime_seconds(3600);
  if (l->max_sequence_jump() == 0) l->set_max_sequence_jump(1u << 20);
  if (l->sequence_window() > 4096) {
    return absl::InvalidArgumentError("config: limits.sequence_window above 4096");
  }
  if (c.firewall().enabled()) {
    auto* fw = c.mutable_firewall();
    if (fw->management_cidrs_size() == 0) {
      return absl::InvalidArgumentError(
          "config: firewall.enabled needs firewall.management_cidrs (the agent never locks out "
          "its own management plane)");
    }
    for (const auto& m : fw->management_cidrs()) {
      absl::StatusOr<firewall::Cidr> cidr = firewall::ParseCidr(m);
      if (!cidr.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("config: firewall.management_cidrs: ",
                                                       cidr.status().message()));
      }
    }
    if (fw->management_ports_size() == 0) {
      uint32_t port = 0;
      const std::string& addr = c.listen_address();
      if (!absl::SimpleAtoi(addr.substr(addr.rfind(':') + 1), &port) || port == 0) {
        return absl::InvalidArgumentError(
            "config: firewall.enabled needs a fixed listen port or firewall.management_ports");
      }
      fw->add_management_ports(port);
      fw->add_management_ports(22);
    }
    for (uint32_t p : fw->management_ports()) {
      if (p == 0 || p > 65535) {
        return absl::InvalidArgumentError("config: firewall.management_ports outside 1-65535");
      }
    }
    if (fw->table().empty()) fw->set_table("nodeward");
  }
  if (c.volumes().enabled()) {
    auto* v = c.mutable_volumes();
    if (v->allowed_mount_roots_size() == 0) {
      return absl::InvalidArgumentError(
          "config: volumes.enabled needs volumes.allowed_mount_roots");
    }
    for (const auto& root : v->allowed_mount_roots()) {
      if (root.size() < 2 || root[0] != '/' || root.back() == '/' ||
          root.find("/.") != std::string::npos || root.find("//") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config: volumes.allowed_mount_roots: '", root, "' is not an absolute, normalised path"));
      }
    }
    if (v->by_id_dir().empty()) v->set_by_id_dir("/dev/disk/by-id");
    if (!v->mount_with().empty() && v->mount_with() != "systemd" && v->mount_with() != "direct") {
      return absl::InvalidArgumentError(absl::StrCat(
          "config: volumes.mount_with: '", v->mount_with(), "' is not systemd, direct or empty"));
    }
  }
  absl::StatusOr<TrustStorePtr> trust = TrustStore::Build(c.trust());
  if (!trust.ok()) return absl::InvalidArgumentError(absl::StrCat("config: ", trust.status().message()));
  return c;
}

VerifierLimits ToVerifierLimits(const nodeward::v1::LimitsConfig& l) {
  VerifierLimits v;
  v.max_envelope_bytes = l.max_envelope_bytes();
  v.max_small_envelope_bytes = l.max_small_envelope_bytes();
  v.max_signatures = l.max_signatures();
  v.clock_skew = absl::Seconds(l.clock_skew_seconds());
  v.max_command_lifetime = absl::Seconds(l.max_command_lifetime_seconds());
  return v;
}

LedgerOptions ToLedgerOptions(const nodeward::v1::AgentConfig& c) {
  LedgerOptions o;
  o.dir = c.state_dir();
  o.max_sequence_jump = c.limits().max_sequence_jump();
  o.sequence_window = c.limits().sequence_window();
  return o;
}

}  // namespace nodeward
