#ifndef NODEWARD_PLATFORM_SERVICE_CONTROL_H_
#define NODEWARD_PLATFORM_SERVICE_CONTROL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"

namespace nodeward::platform {

// Tells a service manager's unit to pick up new files. Thread-compatible.
class ServiceControl {
 public:
  virtual ~ServiceControl() = default;
  // Reloads (or restarts) `unit` and waits for the job: OK only when the
  // job ended "done" and the unit is active; otherwise why not.
  virtual absl::Status Reload(const std::string& unit, bool restart) = 0;
  // Sends `signal` to the unit's main process; OK when it was delivered
  // and the unit is still active afterwards.
  virtual absl::Status Signal(const std::string& unit, int signal) = 0;
};

using ServiceControlPtr = std::unique_ptr<ServiceControl>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_SERVICE_CONTROL_H_
