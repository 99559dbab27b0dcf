#ifndef NODEWARD_TESTS_COMMON_STATUS_MATCHERS_H_
#define NODEWARD_TESTS_COMMON_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/common/reason.h"
#include "gmock/gmock.h"

namespace nodeward::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code, "has status code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

// Code and the stable reason attached by Reject().
MATCHER_P2(Rejected, code, why,
           "is rejected with " + absl::StatusCodeToString(code) + " " + std::string(why)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s << " reason '" << ReasonOf(s) << "'";
  return s.code() == code && ReasonOf(s) == why;
}

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_COMMON_STATUS_MATCHERS_H_
