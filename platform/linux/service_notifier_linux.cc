#include "platform/linux/service_notifier_linux.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

namespace nodeward::platform {

void SystemdNotifier::Notify(const std::string& state) {
  // unset_environment=0: the agent may notify many times.
  sd_notify(0, state.c_str());
}

int SystemdNotifier::TakeListeningSocket(const std::string& path) {
  if (!listen_fds_read_) {
    listen_fds_read_ = true;
    // unset_environment=1: children (mkfs) must not think they were passed
    // sockets. The fds arrive without FD_CLOEXEC; set it.
    const int n = sd_listen_fds(1);
    for (int i = 0; i < n; ++i) {
      const int fd = SD_LISTEN_FDS_START + i;
      fcntl(fd, F_SETFD, FD_CLOEXEC);
      listen_fds_.push_back(fd);
    }
  }
  for (auto it = listen_fds_.begin(); it != listen_fds_.end(); ++it) {
    if (sd_is_socket_unix(*it, SOCK_STREAM, 1, path.c_str(), 0) > 0) {
      const int fd = *it;
      listen_fds_.erase(it);
      return fd;
    }
  }
  return -1;
}

}  // namespace nodeward::platform
