#include "agent/common/logging.h"

#include <chrono>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"

namespace nodeward {

void Log(LogLevel level, const std::string& message) {
  // One fprintf per line keeps lines whole across threads (stdio locks the stream).
  std::fprintf(stderr, "<%d>%s\n", static_cast<int>(level), message.c_str());
}

namespace {

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  static std::mutex mu;
  static std::chrono::steady_clock::time_point window;
  static int lines = 0;
  static uint64_t dropped = 0;
  uint64_t report_dropped = 0;
  bool emit = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    const auto now = std::chrono::steady_clock::now();
    if (now - window >= std::chrono::minutes(1)) {
      report_dropped = dropped;
      dropped = 0;
      lines = 0;
      window = now;
    }
    if (lines < kLibraryLinesPerMinute) {
      ++lines;
      emit = true;
    } else {
      ++dropped;
    }
  }
  if (report_dropped > 0) {
    Log(LogLevel::kWarning, absl::StrCat("libprotobuf: ", report_dropped,
                                         " more lines in the last minute were not logged"));
  }
  if (!emit) return;
  const LogLevel l = level >= google::protobuf::LOGLEVEL_ERROR   ? LogLevel::kError
                     : level == google::protobuf::LOGLEVEL_WARNING ? LogLevel::kWarning
                                                                   : LogLevel::kInfo;
  // The message names a field, never its bytes.
  Log(l, absl::StrCat("libprotobuf ", file, ":", line, ": ", message.substr(0, 300)));
}

}  // namespace

void InstallProtobufLogHandler() { google::protobuf::SetLogHandler(&ProtobufLog); }

}  // namespace nodeward
