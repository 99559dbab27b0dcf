#ifndef NODEWARD_PLATFORM_LINUX_LISTENER_PROBE_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_LISTENER_PROBE_LINUX_H_

#include "platform/listener_probe.h"

namespace nodeward::platform {

// A non-blocking TCP connect and an OpenSSL client handshake driven with
// poll(2) until the server's first handshake message arrives.
class LinuxListenerProbe final : public ListenerProbe {
 public:
  absl::Status Probe(const std::string& address, absl::Duration timeout) override;
  absl::StatusOr<std::string> ServedSpki(const std::string& address,
                                         absl::Duration timeout) override;

 private:
  // Connects and handshakes until the ServerHello (spki null) or the
  // server's certificate (its SPKI hash into *spki).
  absl::Status Handshake(const std::string& address, absl::Duration timeout, std::string* spki);
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_LISTENER_PROBE_LINUX_H_
