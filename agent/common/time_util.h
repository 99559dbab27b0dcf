#ifndef NODEWARD_AGENT_COMMON_TIME_UTIL_H_
#define NODEWARD_AGENT_COMMON_TIME_UTIL_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace nodeward {

// absl::Time <-> google.protobuf.Timestamp (nanosecond precision).
google::protobuf::Timestamp ToTimestamp(absl::Time t);
absl::Time FromTimestamp(const google::protobuf::Timestamp& t);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_COMMON_TIME_UTIL_H_
