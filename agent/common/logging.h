#ifndef NODEWARD_AGENT_COMMON_LOGGING_H_
#define NODEWARD_AGENT_COMMON_LOGGING_H_

#include <string>

#include "absl/strings/str_cat.h"

namespace nodeward {

// sd-daemon(3) priorities: journald reads the "<N>" prefix on stderr.
enum class LogLevel { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };

// Writes one line to stderr. Never pass key material.
void Log(LogLevel level, const std::string& message);

}  // namespace nodeward

#define NW_LOG_ERROR(...) ::nodeward::Log(::nodeward::LogLevel::kError, ::absl::StrCat(__VA_ARGS__))
#define NW_LOG_WARNING(...) \
  ::nodeward::Log(::nodeward::LogLevel::kWarning, ::absl::StrCat(__VA_ARGS__))
#define NW_LOG_INFO(...) ::nodeward::Log(::nodeward::LogLevel::kInfo, ::absl::StrCat(__VA_ARGS__))

#endif  // NODEWARD_AGENT_COMMON_LOGGING_H_
