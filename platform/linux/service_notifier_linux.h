#ifndef NODEWARD_PLATFORM_LINUX_SERVICE_NOTIFIER_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_SERVICE_NOTIFIER_LINUX_H_

#ifndef __linux__
#error "service_notifier_linux is Linux-only"
#endif

#include <vector>

#include "platform/service_notifier.h"

namespace nodeward::platform {

// sd_notify(3) through libsystemd; a no-op when NOTIFY_SOCKET is unset.
class SystemdNotifier final : public ServiceNotifier {
 public:
  // platform::ServiceNotifier
  void Notify(const std::string& state) override;
  int TakeListeningSocket(const std::string& path) override;

 private:
  bool listen_fds_read_ = false;
  std::vector<int> listen_fds_;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_SERVICE_NOTIFIER_LINUX_H_
