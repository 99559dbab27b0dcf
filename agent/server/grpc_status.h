#ifndef NODEWARD_AGENT_SERVER_GRPC_STATUS_H_
#define NODEWARD_AGENT_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace nodeward {

// Trailing metadata key carrying the stable rejection reason.
inline constexpr char kReasonMetadataKey[] = "nodeward-reason";

// The one mapping from absl::Status to grpc::Status (same canonical codes).
grpc::Status ToGrpcStatus(const absl::Status& status);

// ToGrpcStatus, plus the reason (if any) as trailing metadata on `context`.
grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase* context);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_GRPC_STATUS_H_
