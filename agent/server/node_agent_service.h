#ifndef NODEWARD_AGENT_SERVER_NODE_AGENT_SERVICE_H_
#define NODEWARD_AGENT_SERVER_NODE_AGENT_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "agent/command/command_processor.h"
#include "agent/server/command_executor.h"
#include "agent/server/health_publisher.h"
#include "agent/state/audit_log.h"
#include "nodeward/v1/agent.grpc.pb.h"

namespace nodeward {

using NodeAgentBase =
    nodeward::v1::NodeAgent::WithRawCallbackMethod_Execute<nodeward::v1::NodeAgent::CallbackService>;

// gRPC callback service. Execute takes the raw request bytes so the verifier
// sees exactly what arrived (size cap first, then its own envelope parse).
class NodeAgentService final : public NodeAgentBase {
 public:
  // `allowed_client_sans` empty: any certificate chaining to the client CA.
  NodeAgentService(CommandProcessor* processor, CommandExecutor* executor,
                   HealthPublisher* publisher,
                   std::function<nodeward::v1::HealthReport()> build_report,
                   std::vector<std::string> allowed_client_sans, VerifierLimits limits,
                   size_t max_queued_bytes);

  grpc::ServerUnaryReactor* Execute(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<nodeward::v1::HealthReport>* WatchHealth(
      grpc::CallbackServerContext* context,
      const nodeward::v1::WatchHealthRequest* request) override;
  grpc::ServerWriteReactor<nodeward::v1::AuditBatch>* WatchAudit(
      grpc::CallbackServerContext* context,
      const nodeward::v1::WatchAuditRequest* request) override;
  // The chain WatchAudit streams and the feed that wakes its streams after
  // each durable append (null log: refused AUDIT_UNAVAILABLE). Before Start.
  void SetAudit(const AuditLog* log, HealthPublisher* feed) {
    audit_ = log;
    audit_feed_ = feed;
  }

 private:
  // OK with a printable peer name, or PEER_NOT_ALLOWED (audited, bounded).
  absl::StatusOr<std::string> CheckPeer(grpc::CallbackServerContext* context,
                                        const char* rpc) const;

  CommandProcessor* const processor_;
  CommandExecutor* const executor_;
  HealthPublisher* const publisher_;
  const std::function<nodeward::v1::HealthReport()> build_report_;
  const std::vector<std::string> allowed_client_sans_;
  const VerifierLimits limits_;
  const size_t max_queued_bytes_;
  static constexpr int kMaxAuditStreams = 8;
  const AuditLog* audit_ = nullptr;
  HealthPublisher* audit_feed_ = nullptr;
  // Bytes of accepted envelopes not yet answered (2 per envelope byte).
  std::atomic<size_t> queued_bytes_{0};
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_NODE_AGENT_SERVICE_H_
