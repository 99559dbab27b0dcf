#ifndef NODEWARD_PLATFORM_SERVICE_NOTIFIER_H_
#define NODEWARD_PLATFORM_SERVICE_NOTIFIER_H_

#include <memory>
#include <string>

namespace nodeward::platform {

// Tells the service manager about the daemon's state (sd_notify(3) protocol:
// "READY=1", "STATUS=...", "RELOADING=1", "STOPPING=1"). Best effort: a
// missing manager is not an error. Thread-safe.
class ServiceNotifier {
 public:
  virtual ~ServiceNotifier() = default;
  virtual void Notify(const std::string& state) = 0;
  // A listening stream socket the service manager opened for `path`
  // (sd_listen_fds(3): systemd socket activation, e.g.
  // nodeward-status.socket), handed over once: the caller owns it. -1 when
  // there is none.
  virtual int TakeListeningSocket(const std::string& path) {
    (void)path;
    return -1;
  }
};

using ServiceNotifierPtr = std::unique_ptr<ServiceNotifier>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_SERVICE_NOTIFIER_H_
