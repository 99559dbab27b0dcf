#include "agent/app/agent_app.h"

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
#include "grpcpp/health_check_service_interface.h"

// What the agent reports: the facts, the host, the health report, the
// status socket's document and grpc.health.v1.
namespace nodeward {

AgentInfo AgentApp::Info() const {
  AgentInfo info;
  {
    absl::MutexLock lock(&mu_);
    info = info_;
  }
  if (firewall_ != nullptr) {
    info.firewall_enabled = true;
    info.firewall = firewall_->status();
  }
  if (volumes_ != nullptr) {
    info.volumes_enabled = true;
    info.volumes = volumes_->Statuses();
  }
  if (volumes_ != nullptr) {
    const google::protobuf::Timestamp looked = ToTimestamp(deps_.clock->Now());
    for (auto& v : info.volumes) *v.mutable_verified_at() = looked;
  }
  if (wipe_ != nullptr) {
    wipe::WipeHandler::Summary w = wipe_->Describe();
    info.wipe = w.text;
    info.wipe_incomplete = w.incomplete;
  }
  info.health_streams = static_cast<uint32_t>(publisher_.streams());
  if (certs_ != nullptr) info.certificates = certs_->Status();
  if (access_ != nullptr) info.access = access_->Status();
  if (audit_acks_ != nullptr) {
    info.audit = audit_acks_->Health();
    info.audit.set_watchers(static_cast<uint32_t>(audit_feed_.streams()));
    info.audit_verdict = static_cast<int>(audit_acks_->verdict());
  }
  SampleHost(&info);
  return info;
}

void AgentApp::SampleHost(AgentInfo* info) const {
  if (deps_.host == nullptr) return;
  nodeward::v1::HostHealth& h = info->host;
  absl::StatusOr<platform::HostSample> s = deps_.host->Sample();
  if (!s.ok()) {
    info->host_error = std::string(s.status().message());
    return;
  }
  *h.mutable_sampled_at() = ToTimestamp(deps_.clock->Now());
  h.set_uptime_seconds(s->uptime_seconds);
  h.set_load1(s->load[0]);
  h.set_load5(s->load[1]);
  h.set_load15(s->load[2]);
  h.set_cpus(s->cpus);
  h.set_memory_total_bytes(s->memory_total_bytes);
  h.set_memory_available_bytes(s->memory_available_bytes);
  h.set_clock_synchronised(s->clock_known && s->clock_synchronised);
  h.set_clock_max_error_us(s->clock_max_error_us);
  h.set_clock_estimated_error_us(s->clock_estimated_error_us);
  if (!s->clock_known) info->host_error = s->clock_error;
  std::vector<std::pair<std::string, std::string>> paths = {{config_.state_dir(), "state_dir"}};
  for (const auto& v : info->volumes) {
    if (v.state() == nodeward::v1::VolumeStatus::ACTIVE && !v.mount_point().empty()) {
      paths.emplace_back(v.mount_point(), "volume:" + v.volume_id());
    }
  }
  for (const auto& [path, role] : paths) {
    absl::StatusOr<platform::DiskSample> d = deps_.host->Disk(path);
    if (!d.ok()) {
      info->host_error = std::string(d.status().message());
      continue;
    }
    nodeward::v1::DiskSpace* out = h.add_disks();
    out->set_path(path);
    out->set_role(role);
    out->set_total_bytes(d->total_bytes);
    out->set_available_bytes(d->available_bytes);
    out->set_free_inodes(d->free_inodes);
  }
}

nodeward::v1::HealthReport AgentApp::Health() const {
  return BuildHealthReport(Info(), processor_->Stats(), deps_.clock->Now(), health_policy_,
                           &conditions_);
}

void AgentApp::UpdateGrpcHealth() {
  if (server_ == nullptr || server_->GetHealthCheckService() == nullptr) return;
  const bool serving = Health().accepting_commands();
  if (grpc_serving_known_ && serving == grpc_serving_) return;
  grpc_serving_known_ = true;
  grpc_serving_ = serving;
  for (const char* name : {"", "nodeward.v1.NodeAgent"}) {
    server_->GetHealthCheckService()->SetServingStatus(name, serving);
  }
}

std::string AgentApp::RenderStatus() const {
  return ToJsonLine(BuildStatusReport(Info(), processor_->Stats(), deps_.clock->Now(),
                                      health_policy_, &conditions_));
}

}  // namespace nodeward
