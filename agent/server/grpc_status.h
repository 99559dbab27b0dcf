#ifndef NODEWARD_AGENT_SERVER_GRPC_STATUS_H_
#define NODEWARD_AGENT_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"
#include "nodeward/v1/agent.pb.h"

namespace nodeward {

// Trailing metadata key carrying the stable rejection reason.
inline constexpr char kReasonMetadataKey[] = "nodeward-reason";
// Trailing metadata key carrying the refusal's serialized CommandResult.
inline constexpr char kResultMetadataKey[] = "nodeward-result-bin";

// The one mapping from absl::Status to grpc::Status (same canonical codes).
grpc::Status ToGrpcStatus(const absl::Status& status);

// The CommandResult a refusal carries (reason, code, message, whether the
// sequence number was consumed, the command it answers when known).
nodeward::v1::CommandResult RefusalResult(const absl::Status& status);

// ToGrpcStatus, plus the reason (if any) and the refusal's CommandResult as
// trailing metadata on `context`.
grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase* context);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_GRPC_STATUS_H_
