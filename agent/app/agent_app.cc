#include "agent/app/agent_app.h"

#include <grp.h>

#include "agent/app/firewall_boot.h"
#include "agent/state/audit_journal.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/app/config.h"
#include "agent/attest/signing_key.h"
#include "agent/backup/backup_key_store.h"
#include "agent/command/ping_handler.h"
#include "agent/common/logging.h"
#include "agent/common/proto_util.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"
#include "agent/server/tls.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/server_builder.h"

namespace nodeward {
namespace {
// Command threads: enough for concurrent journal writes to share a sync.
constexpr size_t kCommandThreads = 8;
constexpr size_t kCommandQueue = 256;

nodeward::v1::Condition Problem(nodeward::v1::Condition::Type type, absl::string_view message) {
  nodeward::v1::Condition c;
  c.set_type(type);
  c.set_message(std::string(message));
  return c;
}
}  // namespace

AgentApp::AgentApp(AgentDeps deps, std::string config_path)
    : deps_(std::move(deps)), config_path_(std::move(config_path)) {
  absl::MutexLock lock(&mu_);
  info_.version = NODEWARD_VERSION;
  info_.started_at = deps_.clock->Now();
  if (!deps_.memory_lock_problem.empty()) {
    info_.startup_conditions.push_back(
        Problem(nodeward::v1::Condition::MEMORY_NOT_LOCKED, deps_.memory_lock_problem));
  }
}

AgentApp::~AgentApp() { Stop(); }

absl::Status AgentApp::Start() {
  struct Step {
    const char* name;
    absl::Status (AgentApp::*run)();
  };
  static constexpr Step kSteps[] = {
      // Nothing touches the system before the whole config and all TLS
      // material are known good (security rule 8).
      {"load config", &AgentApp::LoadConfigStep},
      {"check TLS material", &AgentApp::CheckTlsStep},
      {"read identity", &AgentApp::ReadIdentityStep},
      {"open command ledger", &AgentApp::OpenLedgerStep},
      {"open audit log", &AgentApp::OpenAuditStep},
      {"load signing key", &AgentApp::LoadSigningKeyStep},
      {"build pipeline", &AgentApp::BuildPipelineStep},
      {"restore firewall", &AgentApp::RestoreFirewallStep},
      {"restore volumes", &AgentApp::RestoreVolumesStep},
      {"restore wipe", &AgentApp::RestoreWipeStep},
      {"start status socket", &AgentApp::StartStatusSocketStep},
      {"start gRPC", &AgentApp::StartGrpcStep},
      {"notify ready", &AgentApp::NotifyReadyStep},
  };
  for (const Step& step : kSteps) {
    deps_.notifier->Notify(absl::StrCat("STATUS=", step.name));
    absl::Status s = (this->*step.run)();
    if (!s.ok()) {
      failed_step_ = step.name;
      return absl::Status(s.code(), absl::StrCat("startup step '", step.name, "': ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status AgentApp::LoadConfigStep() {
  ASSIGN_OR_RETURN(config_, LoadConfig(deps_.fs.get(), config_path_));
  health_policy_ = ToHealthPolicy(config_.health(), config_.firewall().readback_interval_seconds());
  absl::MutexLock lock(&mu_);
  info_.node_id = config_.node_id();
  return absl::OkStatus();
}

absl::Status AgentApp::CheckTlsStep() {
  // Reads and cross-checks every file (key matches certificate, CA parses)
  // and builds the credentials the gRPC server will use.
  ASSIGN_OR_RETURN(server_credentials_, BuildServerCredentials(config_.tls()));
  return absl::OkStatus();
}

absl::Status AgentApp::LoadSigningKeyStep() {
  absl::StatusOr<Ed25519PrivateKey> key =
      attest::LoadOrCreateSigningKey(deps_.fs.get(), config_.state_dir() + "/signing.key");
  if (!key.ok()) {
    // The agent still serves (and keeps the firewall up); a wipe cannot
    // issue a receipt until the key is back, and health says why.
    NW_LOG_ERROR("signing key unusable: ", key.status().message());
    absl::MutexLock lock(&mu_);
    info_.startup_conditions.push_back(Problem(nodeward::v1::Condition::SIGNING_KEY_UNAVAILABLE,
                                               key.status().message()));
    return absl::OkStatus();
  }
  signing_key_ = std::make_unique<Ed25519PrivateKey>(std::move(key).value());
  absl::MutexLock lock(&mu_);
  info_.signing_public_key = signing_key_->PublicRaw();
  info_.signing_key_id = signing_key_->KeyId();
  return absl::OkStatus();
}

absl::Status AgentApp::ReadIdentityStep() {
  ASSIGN_OR_RETURN(std::string boot, deps_.fs->ReadFile(config_.boot_id_file()));
  identity_.node_id = config_.node_id();
  identity_.boot_id = std::string(absl::StripAsciiWhitespace(boot));
  if (identity_.boot_id.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(config_.boot_id_file(), " is empty"));
  }
  absl::MutexLock lock(&mu_);
  info_.boot_id = identity_.boot_id;
  return absl::OkStatus();
}

absl::Status AgentApp::OpenLedgerStep() {
  // A bad state dir does not stop the agent: it serves, refuses commands
  // with STATE_UNAVAILABLE and reports why (health and status).
  ledger_ = CommandLedger::Open(deps_.fs.get(), ToLedgerOptions(config_), deps_.clock->Now());
  for (const auto& id : ledger_->recovered_in_doubt()) {
    NW_LOG_WARNING("command ", id, " was in doubt at startup; recorded as not applied");
  }
  if (!ledger_->health().ok()) {
    NW_LOG_ERROR("command ledger unusable: ", ledger_->health().message());
  }
  return absl::OkStatus();
}

absl::Status AgentApp::OpenAuditStep() {
  absl::StatusOr<std::unique_ptr<AuditLog>> audit =
      AuditLog::Open(deps_.fs.get(), config_.audit_file());
  if (!audit.ok()) {
    NW_LOG_ERROR("audit log unusable: ", audit.status().message());
    absl::MutexLock lock(&mu_);
    info_.startup_conditions.push_back(Problem(nodeward::v1::Condition::AUDIT_UNAVAILABLE, audit.status().message()));
    return absl::OkStatus();
  }
  audit_ = std::move(audit).value();
  if (deps_.journal != nullptr) {
    platform::Journal* journal = deps_.journal.get();
    audit_->set_observer([journal](const nodeward::v1::AuditRecord& r) {
      JournalEntry e = ForJournal(r);
      journal->Send(e.priority, e.message, e.fields);
    });
  }
  // WatchAudit streams wake after each durable append.
  audit_->set_durable_listener([this] { audit_feed_.Publish(); });
  return absl::OkStatus();
}

absl::Status AgentApp::RestoreFirewallStep() {
  if (firewall_ == nullptr) return absl::OkStatus();
  // Subscribe first, so that no change after the restore goes unseen.
  absl::StatusOr<std::unique_ptr<platform::FilterWatch>> watch = packet_filter_->Watch();
  if (!watch.ok()) return watch.status();
  firewall_watch_ = std::move(watch).value();
  // The last desired state is in the kernel before READY=1.
  absl::Status s = firewall_->Restore();
  if (absl::IsDataLoss(s)) {
    NW_LOG_ERROR(s.message());
    absl::MutexLock lock(&mu_);
    info_.startup_conditions.push_back(Problem(nodeward::v1::Condition::FIREWALL_STATE_LOST, s.message()));
    s = absl::OkStatus();
  }
  if (!s.ok()) return s;
  firewall_watcher_ = std::thread([this] { WatchFirewall(); });
  return absl::OkStatus();
}

absl::Status AgentApp::RestoreVolumesStep() {
  if (volumes_ == nullptr) return absl::OkStatus();
  // Looks only: active volumes stay as they are, lost keys are reported.
  absl::Status s = volumes_->Restore();
  if (absl::IsDataLoss(s)) {
    NW_LOG_ERROR(s.message());
    absl::MutexLock lock(&mu_);
    info_.startup_conditions.push_back(Problem(nodeward::v1::Condition::VOLUME_RECORDS_LOST, s.message()));
    return absl::OkStatus();
  }
  if (!s.ok()) return s;
  for (const auto& v : volumes_->Statuses()) {
    NW_LOG_INFO("volume ", v.volume_id(), ": ", nodeward::v1::VolumeStatus::State_Name(v.state()),
                v.reason().empty() ? "" : " (", v.reason(), v.reason().empty() ? "" : ")");
  }
  return absl::OkStatus();
}

absl::Status AgentApp::RestoreWipeStep() {
  // An interrupted wipe is finished before READY=1; if it cannot be, the
  // agent still starts and reports WIPE_INCOMPLETE (a resent Wipe retries).
  absl::Status s = wipe_->Restore();
  if (!s.ok()) {
    NW_LOG_ERROR(s.message());
    if (absl::IsDataLoss(s)) {
      absl::MutexLock lock(&mu_);
      info_.startup_conditions.push_back(Problem(nodeward::v1::Condition::WIPE_RECORD_LOST, s.message()));
    }
  }
  wipe::WipeHandler::Summary w = wipe_->Describe();
  if (!w.text.empty()) NW_LOG_INFO("wipe: ", w.text);
  return absl::OkStatus();
}

void AgentApp::WatchFirewall() {
  while (!stop_watch_.load()) {
    absl::StatusOr<std::vector<platform::FilterEvent>> events =
        firewall_watch_->Wait(absl::Milliseconds(250));
    if (!events.ok()) {
      NW_LOG_ERROR("firewall monitor: ", events.status().message());
      absl::SleepFor(absl::Seconds(1));  // the periodic read-back still runs
      continue;
    }
    if (events->empty()) continue;
    const uint64_t before = firewall_->status().drift_repairs;
    absl::Status s = firewall_->OnEvents(*events);
    if (!s.ok()) NW_LOG_ERROR("firewall repair: ", s.message());
    NoteFirewallDrift(before);
  }
}

void AgentApp::NoteFirewallDrift(uint64_t repairs_before) {
  firewall::FirewallStatus after = firewall_->status();
  if (after.drift_repairs == repairs_before) return;
  NW_LOG_WARNING("firewall drift: ", after.last_drift);
  processor_->AuditEvent("firewall_drift", after.last_drift);
  publisher_.Publish();
}

absl::Status AgentApp::StartStatusSocketStep() {
  StatusSocketOptions o;
  o.path = config_.status_socket().path();
  o.allowed_uids = {config_.status_socket().allowed_uids().begin(),
                    config_.status_socket().allowed_uids().end()};
  o.allowed_gids = {config_.status_socket().allowed_gids().begin(),
                    config_.status_socket().allowed_gids().end()};
  o.socket_gid = config_.status_socket().socket_gid();
  for (const std::string& name : config_.status_socket().allowed_groups()) {
    std::vector<char> buf(16384);
    group gr{};
    group* found = nullptr;
    const int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
    if (rc != 0 || found == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "status socket: group '", name, "' in status_socket.allowed_groups does not exist"));
    }
    o.allowed_gids.insert(found->gr_gid);
  }
  o.inherited_fd = deps_.notifier->TakeListeningSocket(o.path);
  if (o.inherited_fd >= 0) NW_LOG_INFO("status socket ", o.path, " from the service manager");
  status_socket_ = std::make_unique<StatusSocketServer>([this] { return RenderStatus(); });
  return status_socket_->Start(o);
}

absl::Status AgentApp::StartGrpcStep() {
  std::shared_ptr<grpc::ServerCredentials> creds = server_credentials_;
  executor_ = std::make_unique<CommandExecutor>(kCommandThreads, kCommandQueue);
  service_ = std::make_unique<NodeAgentService>(
      processor_.get(), executor_.get(), &publisher_,
      [this] { return Health(); },
      std::vector<std::string>(config_.tls().allowed_client_sans().begin(),
                               config_.tls().allowed_client_sans().end()),
      ToVerifierLimits(config_.limits()), config_.limits().max_queued_bytes());
  service_->SetAudit(audit_.get(), &audit_feed_);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config_.listen_address(), creds, &port);
  builder.RegisterService(service_.get());
  // gRPC bounds memory before our own size cap sees the bytes; leave room
  // above the cap so oversize envelopes get our ENVELOPE_TOO_LARGE reason.
  builder.SetMaxReceiveMessageSize(static_cast<int>(config_.limits().max_envelope_bytes()) + 4096);
  builder.SetMaxSendMessageSize(1 << 20);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 64);
  // A connection that has not finished its TLS handshake in 5 s is closed
  // (gRPC's default is 120 s: a flood of silent connections would hold an
  // fd each that long); one idle for 10 minutes too; keepalive pings find
  // dead peers (a WatchHealth stream of a vanished orchestrator) in <= 25 s.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 10 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 15 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC's own buffers (reads, messages being received) are bounded in
  // total, so many large envelopes at once cannot grow memory before the
  // cheap checks see them: one envelope of the largest size fits.
  grpc::ResourceQuota quota("nodeward-agent");
  quota.Resize(static_cast<size_t>(config_.limits().max_envelope_bytes()) + (16u << 20));
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 * 1024);
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    return absl::UnavailableError(absl::StrCat("listen on ", config_.listen_address()));
  }
  std::string host = config_.listen_address().substr(0, config_.listen_address().rfind(':'));
  absl::MutexLock lock(&mu_);
  info_.listen_address = absl::StrCat(host, ":", port);
  return absl::OkStatus();
}

absl::Status AgentApp::NotifyReadyStep() {
  if (deps_.clock_steps != nullptr) {
    // Horizons and validity windows are on the wall clock: a step (a VM
    // resumed past not_after, the clock set back) is pushed at once.
    absl::Status watching = deps_.clock_steps->Start([this](absl::Duration step) {
      const std::string what = absl::StrCat(
          "wall clock stepped by ", absl::StrFormat("%+.3f", absl::ToDoubleSeconds(step)), " s");
      NW_LOG_WARNING(what);
      {
        absl::MutexLock lock(&mu_);
        info_.clock_stepped_at = deps_.clock->Now();
        info_.clock_step = step;
        ++info_.clock_steps;
      }
      processor_->AuditEvent("clock_stepped", what);
      publisher_.Publish();
    });
    if (!watching.ok()) NW_LOG_WARNING("clock steps are not watched: ", watching.message());
  }
  std::string addr = listen_address();
  AgentInfo info = Info();
  auto report = Health();
  std::string state = nodeward::v1::HealthReport::State_Name(report.state());
  UpdateGrpcHealth();
  deps_.notifier->Notify(absl::StrCat("READY=1\nSTATUS=", state, " listening on ", addr));
  NW_LOG_INFO("nodeward-agent ", NODEWARD_VERSION, " serving on ", addr, " as node ",
              identity_.node_id, " (", state, ")");
  return absl::OkStatus();
}

absl::Status AgentApp::Reload() {
  deps_.notifier->Notify("RELOADING=1\nSTATUS=reloading trust");
  absl::StatusOr<nodeward::v1::AgentConfig> c = LoadConfig(deps_.fs.get(), config_path_);
  absl::Status result;
  if (c.ok()) {
    absl::StatusOr<TrustStorePtr> trust = TrustStore::Build(c->trust());
    if (trust.ok()) {
      size_t keys = (*trust)->key_count();
      processor_->ReplaceTrust(std::move(trust).value());
      absl::MutexLock lock(&mu_);
      info_.trusted_keys = static_cast<uint32_t>(keys);
      info_.trust_loaded_at = deps_.clock->Now();
      info_.last_reload_error.clear();
    } else {
      result = trust.status();
    }
  } else {
    result = c.status();
  }
  if (result.ok()) {
    processor_->AuditEvent("trust_reload", "trust reloaded from " + config_path_);
    NW_LOG_INFO("trust reloaded from ", config_path_);
  } else {
    processor_->AuditEvent("trust_reload_failed", std::string(result.message()));
    NW_LOG_ERROR("reload refused, old trust kept: ", result.message());
    absl::MutexLock lock(&mu_);
    info_.last_reload_error = std::string(result.message());
  }
  deps_.notifier->Notify(absl::StrCat("READY=1\nSTATUS=", result.ok() ? "reloaded" : "reload failed",
                                      " listening on ", listen_address()));
  publisher_.Publish();
  return result;
}

void AgentApp::ProbeListener() {
  if (deps_.listener_probe == nullptr || server_ == nullptr) return;
  absl::Status s = deps_.listener_probe->Probe(listen_address(), absl::Seconds(2));
  std::string was;
  {
    absl::MutexLock lock(&mu_);
    was = info_.listener_down;
    if (s.ok()) {
      probe_failures_ = 0;
      info_.listener_down.clear();
    } else if (++probe_failures_ >= kProbeFailuresForDown) {
      info_.listener_down = absl::StrCat(probe_failures_, " probes in a row failed: ", s.message());
    }
  }
  if (s.ok() && !was.empty()) {
    NW_LOG_INFO("gRPC listener answers again");
    processor_->AuditEvent("listener_up", "the gRPC listener answers again");
    publisher_.Publish();
  } else if (!s.ok() && was.empty() && probe_failures_ >= kProbeFailuresForDown) {
    NW_LOG_ERROR("gRPC listener down (watchdog no longer fed): ", s.message());
    processor_->AuditEvent("listener_down", std::string(s.message()));
    publisher_.Publish();
  }
}

void AgentApp::Tick() {
  if (ticks_ % kProbeEveryTicks == 0) ProbeListener();
  bool listener_down;
  {
    absl::MutexLock lock(&mu_);
    listener_down = !info_.listener_down.empty();
  }
  // The main loop is alive and the port answers: pet the watchdog. A
  // listener that no longer accepts is a dead agent to the orchestrator.
  if (!listener_down) deps_.notifier->Notify("WATCHDOG=1");
  if (firewall_ != nullptr) {
    const uint64_t before = firewall_->status().rollbacks;
    absl::Status s = firewall_->CheckDeadline(deps_.clock->Now());
    if (!s.ok()) NW_LOG_ERROR("firewall rollback: ", s.message());
    firewall::FirewallStatus after = firewall_->status();
    if (after.rollbacks != before) {
      NW_LOG_WARNING(after.last_rollback);
      processor_->AuditEvent("firewall_rollback", after.last_rollback);
      publisher_.Publish();
    }
    const uint32_t every = config_.firewall().readback_interval_seconds() == 0
                               ? 30
                               : config_.firewall().readback_interval_seconds();
    if ((ticks_ + 1) % every == 0) {
      const uint64_t repairs = after.drift_repairs;
      absl::Status v = firewall_->Verify("periodic read-back");
      if (!v.ok()) NW_LOG_ERROR("firewall read-back: ", v.message());
      NoteFirewallDrift(repairs);
    }
  }
  if (access_ != nullptr) access_->Poll();
  processor_->FlushRefusalSummary();
  UpdateGrpcHealth();
  if (++ticks_ % 10 == 0) publisher_.Publish();
}

void AgentApp::Stop() {
  if (stopped_) return;
  stopped_ = true;
  deps_.notifier->Notify("STOPPING=1\nSTATUS=draining");
  deps_.clock_steps.reset();  // its thread uses the processor and publisher
  // Teardown runs every step whatever failed during startup.
  stop_watch_ = true;
  if (firewall_watcher_.joinable()) firewall_watcher_.join();
  if (processor_) processor_->Drain();
  if (processor_) UpdateGrpcHealth();  // draining: NOT_SERVING before the port closes
  publisher_.Close();
  audit_feed_.Close();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (executor_) executor_->Stop();
  if (status_socket_) status_socket_->Stop();
  if (processor_) processor_->AuditEvent("shutdown", "clean stop");
  if (audit_) (void)audit_->Sync();
  NW_LOG_INFO("nodeward-agent stopped");
}

std::string AgentApp::listen_address() const {
  absl::MutexLock lock(&mu_);
  return info_.listen_address;
}

}  // namespace nodeward
