#include "platform/linux/service_notifier_linux.h"

#include <systemd/sd-daemon.h>

namespace nodeward::platform {

void SystemdNotifier::Notify(const std::string& state) {
  // unset_environment=0: the agent may notify many times.
  sd_notify(0, state.c_str());
}

}  // namespace nodeward::platform
