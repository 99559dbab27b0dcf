#include "agent/app/agent_app.h"

#include "agent/access/access_manager.h"

#include "absl/strings/str_cat.h"
#include "agent/app/config.h"
#include "agent/backup/backup_key_store.h"
#include "agent/command/ping_handler.h"
#include "agent/app/firewall_boot.h"
#include "agent/common/logging.h"
#include "agent/common/proto_util.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"

// The command pipeline: the handler for every command type, by config.
namespace nodeward {
namespace {

// A second command type served by a handler registered under another.
class ForwardingHandler final : public CommandHandler {
 public:
  explicit ForwardingHandler(CommandHandler* to) : to_(to) {}
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& c) override {
    return to_->Apply(c);
  }

 private:
  CommandHandler* to_;
};

// Refuses a command type this node is configured not to handle.
class DisabledHandler final : public CommandHandler {
 public:
  explicit DisabledHandler(std::string why) : why_(std::move(why)) {}
  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand&) override {
    return WithReason(absl::FailedPreconditionError(why_), reason::kCapabilityDisabled);
  }
  bool ChangesState() const override { return false; }

 private:
  std::string why_;
};
}  // namespace

absl::Status AgentApp::BuildPipelineStep() {
  ASSIGN_OR_RETURN(TrustStorePtr trust, TrustStore::Build(config_.trust()));
  {
    absl::MutexLock lock(&mu_);
    info_.trusted_keys = static_cast<uint32_t>(trust->key_count());
    info_.trust_loaded_at = deps_.clock->Now();
  }
  HandlerMap handlers;
  handlers["ping"] = std::make_unique<PingHandler>(deps_.clock.get());
  backup_keys_ = std::make_unique<backup::BackupKeyStore>(deps_.fs.get(), config_.backup_key_dir());
  handlers["provision_backup_key"] =
      std::make_unique<backup::ProvisionBackupKeyHandler>(backup_keys_.get());
  if (config_.firewall().enabled()) {
    if (!deps_.make_packet_filter) {
      return absl::FailedPreconditionError("firewall enabled but no packet filter available");
    }
    packet_filter_ = deps_.make_packet_filter(config_.firewall().table());
    firewall::ManagementAccess mgmt = ManagementFrom(config_);
    auto fw = std::make_unique<firewall::FirewallReconciler>(
        packet_filter_.get(), deps_.fs.get(), deps_.clock.get(),
        config_.state_dir() + "/firewall.pb", std::move(mgmt));
    fw->set_conntrack(deps_.conntrack.get());
    fw->set_table(config_.firewall().table());
    firewall_ = fw.get();
    handlers["apply_firewall"] = std::move(fw);
    handlers["confirm_firewall"] = std::make_unique<ForwardingHandler>(firewall_);
  } else {
    for (const char* type : {"apply_firewall", "confirm_firewall"}) {
      handlers[type] = std::make_unique<DisabledHandler>(
          "firewall management is disabled in this node's config (firewall.enabled)");
    }
  }
  if (config_.volumes().enabled()) {
    if (!deps_.make_volumes) {
      return absl::FailedPreconditionError("volumes enabled but no volume platform available");
    }
    volume_platform_ = deps_.make_volumes(
        config_.volumes().by_id_dir(),
        {config_.volumes().allowed_mount_roots().begin(), config_.volumes().allowed_mount_roots().end()},
        config_.volumes().mount_with());
    auto vm = std::make_unique<volume::VolumeManager>(
        volume::VolumeDeps{volume_platform_.devices.get(), volume_platform_.crypt.get(),
                           volume_platform_.filesystems.get(), volume_platform_.random.get(),
                           deps_.fs.get(), deps_.clock.get(), deps_.journal.get()},
        volume::VolumeOptions{{config_.volumes().allowed_mount_roots().begin(),
                               config_.volumes().allowed_mount_roots().end()},
                              config_.state_dir() + "/volumes.pb", identity_.boot_id});
    volumes_ = vm.get();
    handlers["setup_volume"] = std::move(vm);
  } else {
    handlers["setup_volume"] = std::make_unique<DisabledHandler>(
        "volume management is disabled in this node's config (volumes.enabled)");
  }
  auto wipe_handler = std::make_unique<wipe::WipeHandler>(
      wipe::WipeDeps{volumes_, backup_keys_.get(), deps_.fs.get(), deps_.clock.get()},
      wipe::WipeOptions{config_.state_dir() + "/wipe.pb", identity_.node_id, identity_.boot_id,
                        signing_key_.get(), OrphanVolumeRecords()});
  wipe_ = wipe_handler.get();
  // A wiped node takes no new volumes or keys.
  for (const char* type : {"setup_volume", "provision_backup_key"}) {
    handlers[type] = std::make_unique<wipe::RefuseAfterWipe>(wipe_, std::move(handlers[type]));
  }
  handlers["wipe"] = std::move(wipe_handler);
  if (config_.certificates().targets_size() > 0 || config_.certificates().manage_client_ca()) {
    cert::CertOptions o;
    if (config_.certificates().manage_client_ca()) o.client_ca_file = config_.tls().client_ca_file();
    o.targets.assign(config_.certificates().targets().begin(),
                     config_.certificates().targets().end());
    if (config_.certificates().clock_skew_seconds() != 0) {
      o.clock_skew = absl::Seconds(config_.certificates().clock_skew_seconds());
    }
    o.state_dir = config_.state_dir();
    o.node_id = identity_.node_id;
    ASSIGN_OR_RETURN(std::unique_ptr<cert::CertificateManager> cm,
                     cert::CertificateManager::Create({deps_.fs.get(), deps_.clock.get(), deps_.services.get(),
                                                       ServedSpki(), nullptr},
                                                      std::move(o)));
    certs_ = cm.get();
    handlers["request_certificate"] = std::move(cm);
    handlers["install_certificate"] = std::make_unique<ForwardingHandler>(certs_);
    handlers["update_ca_bundle"] = std::make_unique<ForwardingHandler>(certs_);
    // Nor new keys or certificates once wiped (the VM is going away).
    for (const char* type : {"request_certificate", "install_certificate", "update_ca_bundle"}) {
      handlers[type] = std::make_unique<wipe::RefuseAfterWipe>(wipe_, std::move(handlers[type]));
    }
  } else {
    for (const char* type : {"request_certificate", "install_certificate", "update_ca_bundle"}) {
      handlers[type] = std::make_unique<DisabledHandler>(
          "no certificate targets in this node's config (certificates.targets)");
    }
  }
  constexpr const char* kAccessTypes[] = {"grant_operator_access", "revoke_operator_access",
                                          "acknowledge_unauthorised_access"};
  if (config_.access().enabled() && deps_.logins != nullptr) {
    access::AccessOptions o;
    if (!config_.access().account().empty()) o.account = config_.access().account();
    o.keys_file = config_.access().authorized_keys_file().empty()
                      ? "/var/lib/nodeward-access/authorized_keys"
                      : config_.access().authorized_keys_file();
    o.state_file = config_.state_dir() + "/access.pb";
    if (config_.access().max_window_seconds() != 0) {
      o.max_window = absl::Seconds(config_.access().max_window_seconds());
    }
    // Records go to the chain once the processor exists (Poll and commands
    // run only after startup).
    auto audit = [this](const std::string& event, const std::string& message) {
      NW_LOG_WARNING(event, ": ", message);
      if (processor_) processor_->AuditEvent(event, message);
    };
    ASSIGN_OR_RETURN(std::unique_ptr<access::AccessManager> am,
                     access::AccessManager::Create(
                         {deps_.fs.get(), deps_.clock.get(), deps_.logins.get(), audit}, o));
    access_ = am.get();
    handlers[kAccessTypes[0]] = std::move(am);
    handlers[kAccessTypes[1]] = std::make_unique<ForwardingHandler>(access_);
    handlers[kAccessTypes[2]] = std::make_unique<ForwardingHandler>(access_);
    // A wiped node opens no new window (a revoke or acknowledgement still works).
    handlers[kAccessTypes[0]] =
        std::make_unique<wipe::RefuseAfterWipe>(wipe_, std::move(handlers[kAccessTypes[0]]));
  } else {
    for (const char* type : kAccessTypes) {
      handlers[type] = std::make_unique<DisabledHandler>(
          "operator access is disabled in this node's config (access.enabled)");
    }
  }
  {
    audit::AuditAckOptions o;
    o.state_file = config_.state_dir() + "/audit_ack.pb";
    if (config_.health().audit_backlog_records() != 0) {
      o.backlog_limit = config_.health().audit_backlog_records();
    }
    ASSIGN_OR_RETURN(std::unique_ptr<audit::AuditAcknowledgements> acks,
                     audit::AuditAcknowledgements::Create(deps_.fs.get(), deps_.clock.get(),
                                                          audit_.get(), std::move(o)));
    audit_acks_ = acks.get();
    handlers["acknowledge_audit"] = std::move(acks);
  }
  processor_ = std::make_unique<CommandProcessor>(
      deps_.clock.get(), identity_, ToVerifierLimits(config_.limits()), std::move(trust),
      ledger_.get(), audit_.get(), std::move(handlers));
  processor_->SetOnChange([this] { publisher_.Publish(); });
  processor_->AuditEvent("startup", absl::StrCat("nodeward-agent ", NODEWARD_VERSION,
                                                 " node ", identity_.node_id));
  return absl::OkStatus();
}

std::string AgentApp::OrphanVolumeRecords() const {
  if (volumes_ != nullptr) return "";
  const std::string path = config_.state_dir() + "/volumes.pb";
  return deps_.fs->FileSize(path).ok() ? path : "";
}

std::function<absl::StatusOr<std::string>()> AgentApp::ServedSpki() {
  if (deps_.listener_probe == nullptr) return nullptr;
  return [this]() -> absl::StatusOr<std::string> {
    return deps_.listener_probe->ServedSpki(listen_address(), absl::Seconds(2));
  };
}

}  // namespace nodeward
