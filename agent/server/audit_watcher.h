#ifndef NODEWARD_AGENT_SERVER_AUDIT_WATCHER_H_
#define NODEWARD_AGENT_SERVER_AUDIT_WATCHER_H_

#include "agent/server/health_publisher.h"
#include "agent/state/audit_log.h"
#include "grpcpp/grpcpp.h"
#include "nodeward/v1/audit.pb.h"

namespace nodeward {

// One WatchAudit stream (docs/audit.md): the durable chain from the
// request's from_index on, in batches, then each record once it is durable,
// woken by `feed` (published after every durable append). Never a gap and
// never a record twice; one write in flight. A record that cannot be read
// back as the chain says ends the stream with DATA_LOSS.
// Deletes itself once gRPC is done with it.
grpc::ServerWriteReactor<nodeward::v1::AuditBatch>* NewAuditWatcher(
    const AuditLog* log, HealthPublisher* feed, const nodeward::v1::WatchAuditRequest& request);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_AUDIT_WATCHER_H_
