#ifndef NODEWARD_PLATFORM_LINUX_SYSTEMD_BUS_H_
#define NODEWARD_PLATFORM_LINUX_SYSTEMD_BUS_H_

// What the agent's systemd clients share: the connection (systemd's private
// socket, as systemctl uses as root, else the system bus), error and
// message holders, unit object paths.

#include <systemd/sd-bus.h>

#include <string>

#include "absl/status/statusor.h"

namespace nodeward::platform {

inline constexpr char kSystemdService[] = "org.freedesktop.systemd1";
inline constexpr char kSystemdManagerPath[] = "/org/freedesktop/systemd1";
inline constexpr char kSystemdManager[] = "org.freedesktop.systemd1.Manager";
inline constexpr char kSystemdUnit[] = "org.freedesktop.systemd1.Unit";

struct BusError {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~BusError() { sd_bus_error_free(&e); }
  std::string text(int r) const;
};

struct BusMessage {
  sd_bus_message* m = nullptr;
  ~BusMessage() { sd_bus_message_unref(m); }
};

// A new connection to systemd; the caller owns it (sd_bus_flush_close_unref).
absl::StatusOr<sd_bus*> OpenSystemdBus();

// /org/freedesktop/systemd1/unit/<escaped name>.
std::string SystemdUnitPath(const std::string& unit);

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_SYSTEMD_BUS_H_
