#ifndef NODEWARD_AGENT_COMMON_LOGGING_H_
#define NODEWARD_AGENT_COMMON_LOGGING_H_

#include <string>

#include "absl/strings/str_cat.h"

namespace nodeward {

// sd-daemon(3) priorities: journald reads the "<N>" prefix on stderr.
enum class LogLevel { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };

// Writes one line to stderr. Never pass key material.
void Log(LogLevel level, const std::string& message);

// Routes libprotobuf's own log lines (it writes one ERROR line per string
// field with invalid UTF-8 it parses) through Log, at most
// kLibraryLinesPerMinute a minute; the rest are counted and the count is
// logged when the next minute starts. A peer cannot flood the journal.
void InstallProtobufLogHandler();
inline constexpr int kLibraryLinesPerMinute = 10;

}  // namespace nodeward

#define NW_LOG_ERROR(...) ::nodeward::Log(::nodeward::LogLevel::kError, ::absl::StrCat(__VA_ARGS__))
#define NW_LOG_WARNING(...) \
  ::nodeward::Log(::nodeward::LogLevel::kWarning, ::absl::StrCat(__VA_ARGS__))
#define NW_LOG_INFO(...) ::nodeward::Log(::nodeward::LogLevel::kInfo, ::absl::StrCat(__VA_ARGS__))

#endif  // NODEWARD_AGENT_COMMON_LOGGING_H_
