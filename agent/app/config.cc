#include "agent/app/config.h"

#include "absl/strings/str_cat.h"
#include "agent/command/trust_store.h"
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
  if (l->max_envelope_bytes() > (4u << 20)) {
    return absl::InvalidArgumentError("config: limits.max_envelope_bytes above 4 MiB");
  }
  if (l->max_signatures() == 0) l->set_max_signatures(8);
  if (l->clock_skew_seconds() == 0) l->set_clock_skew_seconds(300);
  if (l->max_command_lifetime_seconds() == 0) l->set_max_command_lifetime_seconds(3600);
  if (l->max_sequence_jump() == 0) l->set_max_sequence_jump(1u << 20);
  if (l->sequence_window() > 4096) {
    return absl::InvalidArgumentError("config: limits.sequence_window above 4096");
  }
  absl::StatusOr<TrustStorePtr> trust = TrustStore::Build(c.trust());
  if (!trust.ok()) return absl::InvalidArgumentError(absl::StrCat("config: ", trust.status().message()));
  return c;
}

VerifierLimits ToVerifierLimits(const nodeward::v1::LimitsConfig& l) {
  VerifierLimits v;
  v.max_envelope_bytes = l.max_envelope_bytes();
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
