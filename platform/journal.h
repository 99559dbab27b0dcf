#ifndef NODEWARD_PLATFORM_JOURNAL_H_
#define NODEWARD_PLATFORM_JOURNAL_H_

#include <string>
#include <utility>
#include <vector>

namespace nodeward::platform {

// Structured log entries (journald fields: upper case, [A-Z0-9_]).
class Journal {
 public:
  virtual ~Journal() = default;
  // `priority` as syslog (3 error ... 6 info). Never pass key material.
  virtual void Send(int priority, const std::string& message,
                    const std::vector<std::pair<std::string, std::string>>& fields) = 0;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_JOURNAL_H_
