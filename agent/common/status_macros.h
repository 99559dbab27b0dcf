#ifndef NODEWARD_AGENT_COMMON_STATUS_MACROS_H_
#define NODEWARD_AGENT_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Abseil 20220623 has no status macros; these evaluate `expr` exactly once.
#define NW_STATUS_CONCAT_INNER_(a, b) a##b
#define NW_STATUS_CONCAT_(a, b) NW_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status nw_status_ = (expr);            \
    if (!nw_status_.ok()) return nw_status_;       \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(NW_STATUS_CONCAT_(nw_statusor_, __LINE__), lhs, expr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()

#endif  // NODEWARD_AGENT_COMMON_STATUS_MACROS_H_
