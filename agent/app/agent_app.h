#ifndef NODEWARD_AGENT_APP_AGENT_APP_H_
#define NODEWARD_AGENT_APP_AGENT_APP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/backup/backup_key_store.h"
#include "agent/command/command_processor.h"
#include "agent/firewall/firewall_reconciler.h"
#include "agent/volume/volume_manager.h"
#include "agent/wipe/wipe.h"
#include "agent/access/access_manager.h"
#include "agent/audit/audit_ack.h"
#include "agent/cert/cert_manager.h"
#include "agent/server/health_publisher.h"
#include "agent/server/node_agent_service.h"
#include "agent/server/status_report.h"
#include "agent/server/status_socket.h"
#include "agent/state/audit_log.h"
#include "agent/state/command_ledger.h"
#include "agent/common/crypto.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "nodeward/v1/config.pb.h"
#include "platform/clock.h"
#include "platform/clock_steps.h"
#include "platform/conntrack.h"
#include "platform/journal.h"
#include "platform/file_system.h"
#include "platform/host.h"
#include "platform/logins.h"
#include "platform/listener_probe.h"
#include "platform/packet_filter.h"
#include "platform/service_control.h"
#include "platform/service_notifier.h"
#include "platform/volume.h"

namespace nodeward {

// Everything with a side effect, built by main (Linux) or a test (fakes).
struct AgentDeps {
  platform::ClockPtr clock;
  platform::FileSystemPtr fs;
  platform::ServiceNotifierPtr notifier;
  // Makes the packet filter for the configured table; called only when the
  // config enables the firewall.
  std::function<platform::PacketFilterPtr(const std::string& table)> make_packet_filter;
  // Connection tracking, so that connections the desired state forbids do
  // not outlive a drift repair; optional (none: nothing is cut).
  std::unique_ptr<platform::Conntrack> conntrack;
  // One structured entry per durable audit record (optional).
  std::unique_ptr<platform::Journal> journal;
  // Block devices, dm-crypt, file systems and randomness; used only when
  // the config enables volumes.
  struct Volumes {
    std::unique_ptr<platform::BlockDevices> devices;
    std::unique_ptr<platform::Crypt> crypt;
    std::unique_ptr<platform::Filesystems> filesystems;
    std::unique_ptr<platform::Random> random;
  };
  std::function<Volumes(const std::string& by_id_dir,
                        const std::vector<std::string>& allowed_mount_roots,
                        const std::string& mount_with)>
      make_volumes;
  // Load, memory, disk space and clock discipline for health; null: not
  // reported.
  platform::HostProbePtr host;
  // Reloads services after a certificate install; null: none (a target
  // with a reload action is then refused at start).
  platform::ServiceControlPtr services;
  // Checks the gRPC listener from the main loop; null: not checked.
  platform::ListenerProbePtr listener_probe;
  // Tells when the wall clock is stepped (health is pushed at once, the
  // step audited); null: not watched.
  platform::ClockStepWatcherPtr clock_steps;
  // Login sessions, for operator access; null: access cannot be enabled.
  platform::LoginsPtr logins;
  // Why main could not lock the process's memory ("" if it did): reported
  // as MEMORY_NOT_LOCKED.
  std::string memory_lock_problem;
};

// The daemon's life: Start runs the ordered startup steps (load config, read
// identity, open state, open audit, build pipeline, status socket, gRPC,
// READY=1); Stop runs the whole teardown list. Start, Reload, Tick and Stop
// are called from the main thread only.
class AgentApp {
 public:
  AgentApp(AgentDeps deps, std::string config_path);
  ~AgentApp();

  // Runs every step in order; the first failing step's error is returned
  // (prefixed with the step name) and the agent must exit non-zero.
  absl::Status Start();
  // The step Start() failed at ("" before Start or when it succeeded).
  // "load config" and "check TLS material" are configuration errors that a
  // restart cannot fix: the agent exits 78 (EX_CONFIG) for them, and the
  // unit's RestartPreventExitStatus=78 stops systemd from looping.
  const std::string& failed_step() const { return failed_step_; }
  static bool IsConfigurationStep(const std::string& step) {
    return step == "load config" || step == "check TLS material";
  }
  // SIGHUP: re-reads the config file and swaps the trust store. A bad file
  // keeps the old trust and is reported in status and the audit chain.
  absl::Status Reload();
  // Called every second: watchdog, firewall confirmation deadlines and
  // periodic read-back, the listener probe every kProbeEveryTicks, and a
  // health push to watchers every 10 s. The watchdog is not fed while the
  // listener is down (kProbeFailuresForDown probes in a row failed): systemd
  // then restarts the agent.
  void Tick();
  static constexpr uint64_t kProbeEveryTicks = 5;
  static constexpr int kProbeFailuresForDown = 3;
  // SIGTERM: refuse new commands, drain in-flight ones, stop listeners.
  void Stop();

  std::string listen_address() const;
  // The health report now (every stream, the status socket, grpc.health.v1).
  nodeward::v1::HealthReport Health() const;

 private:
  absl::Status LoadConfigStep();
  absl::Status CheckTlsStep();
  std::string failed_step_;
  absl::Status ReadIdentityStep();
  absl::Status LoadSigningKeyStep();
  absl::Status OpenLedgerStep();
  absl::Status OpenAuditStep();
  absl::Status BuildPipelineStep();
  absl::Status RestoreFirewallStep();
  absl::Status RestoreVolumesStep();
  absl::Status RestoreWipeStep();
  absl::Status StartStatusSocketStep();
  absl::Status StartGrpcStep();
  absl::Status NotifyReadyStep();

  // The netlink monitor: repairs foreign changes to the table as they
  // happen (runs on its own thread until Stop).
  void WatchFirewall();
  void NoteFirewallDrift(uint64_t repairs_before);

  AgentInfo Info() const;
  // grpc.health.v1 says SERVING for "" and nodeward.v1.NodeAgent exactly
  // when the report accepts commands.
  void UpdateGrpcHealth();
  void SampleHost(AgentInfo* info) const;
  // What a new handshake to the listener is served (null without a probe).
  std::function<absl::StatusOr<std::string>()> ServedSpki();
  // The volume record file when volumes are disabled but it exists.
  std::string OrphanVolumeRecords() const;
  std::string RenderStatus() const;

  AgentDeps deps_;
  const std::string config_path_;
  nodeward::v1::AgentConfig config_;
  NodeIdentity identity_;
  std::shared_ptr<grpc::ServerCredentials> server_credentials_;
  std::unique_ptr<Ed25519PrivateKey> signing_key_;
  std::unique_ptr<CommandLedger> ledger_;
  std::unique_ptr<backup::BackupKeyStore> backup_keys_;
  platform::PacketFilterPtr packet_filter_;
  firewall::FirewallReconciler* firewall_ = nullptr;  // owned by the handler map
  std::unique_ptr<platform::FilterWatch> firewall_watch_;
  AgentDeps::Volumes volume_platform_;
  volume::VolumeManager* volumes_ = nullptr;  // owned by the handler map
  wipe::WipeHandler* wipe_ = nullptr;         // owned by the handler map
  cert::CertificateManager* certs_ = nullptr;  // owned by the handler map
  audit::AuditAcknowledgements* audit_acks_ = nullptr;  // owned by the handler map
  // Wakes WatchAudit streams after each durable audit append.
  HealthPublisher audit_feed_;
  access::AccessManager* access_ = nullptr;     // owned by the handler map
  std::thread firewall_watcher_;
  std::atomic<bool> stop_watch_{false};
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<CommandProcessor> processor_;
  HealthPublisher publisher_;
  std::unique_ptr<CommandExecutor> executor_;
  std::unique_ptr<NodeAgentService> service_;
  std::unique_ptr<StatusSocketServer> status_socket_;
  std::unique_ptr<grpc::Server> server_;
  HealthPolicy health_policy_;
  mutable ConditionTracker conditions_;
  bool grpc_serving_known_ = false;
  bool grpc_serving_ = false;
  bool stopped_ = false;
  uint64_t ticks_ = 0;
  int probe_failures_ = 0;
  void ProbeListener();

  mutable absl::Mutex mu_;
  AgentInfo info_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_APP_AGENT_APP_H_
