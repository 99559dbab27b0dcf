#include "agent/server/grpc_status.h"

#include <string>

#include "agent/common/reason.h"

namespace nodeward {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase* context) {
  std::string why = ReasonOf(status);
  if (!why.empty()) context->AddTrailingMetadata(kReasonMetadataKey, why);
  return ToGrpcStatus(status);
}

}  // namespace nodeward
