#include "agent/common/logging.h"

#include <cstdio>

namespace nodeward {

void Log(LogLevel level, const std::string& message) {
  // One fprintf per line keeps lines whole across threads (stdio locks the stream).
  std::fprintf(stderr, "<%d>%s\n", static_cast<int>(level), message.c_str());
}

}  // namespace nodeward
