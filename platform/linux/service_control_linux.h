#ifndef NODEWARD_PLATFORM_LINUX_SERVICE_CONTROL_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_SERVICE_CONTROL_LINUX_H_

#include "platform/service_control.h"

typedef struct sd_bus sd_bus;

namespace nodeward::platform {

// systemd over sd-bus: ReloadUnit/RestartUnit, with the job's result from
// the Manager's JobRemoved signal (not a poll of the unit's state, which
// cannot tell a failed ExecReload from a finished one); KillUnit for a
// signal to the main process.
class SystemdServiceControl final : public ServiceControl {
 public:
  SystemdServiceControl() = default;
  ~SystemdServiceControl() override;
  absl::Status Reload(const std::string& unit, bool restart) override;
  absl::Status Signal(const std::string& unit, int signal) override;

 private:
  absl::Status ActiveOrWhy(const std::string& unit);
  sd_bus* bus_ = nullptr;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_SERVICE_CONTROL_LINUX_H_
