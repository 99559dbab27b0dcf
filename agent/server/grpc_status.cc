#include "agent/server/grpc_status.h"

#include <string>

#include "agent/common/reason.h"
#include "nodeward/v1/agent.pb.h"

namespace nodeward {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

nodeward::v1::CommandResult RefusalResult(const absl::Status& status) {
  nodeward::v1::CommandResult r;
  if (auto named = status.GetPayload(kRefusalResultUrl)) {
    if (!r.ParseFromString(std::string(*named))) r.Clear();
  }
  nodeward::v1::Reason why = nodeward::v1::APPLY_FAILED;
  const std::string name = ReasonOf(status);
  if (!name.empty() && !nodeward::v1::Reason_Parse(name, &why)) why = nodeward::v1::APPLY_FAILED;
  r.set_reason(why);
  r.set_code(static_cast<int32_t>(status.code()));
  r.set_message(std::string(status.message()));
  r.set_sequence_consumed(SequenceConsumed(status));
  return r;
}

grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase* context) {
  if (status.ok()) return grpc::Status::OK;
  std::string why = ReasonOf(status);
  if (!why.empty()) context->AddTrailingMetadata(kReasonMetadataKey, why);
  context->AddTrailingMetadata(kResultMetadataKey, RefusalResult(status).SerializeAsString());
  return ToGrpcStatus(status);
}

}  // namespace nodeward
