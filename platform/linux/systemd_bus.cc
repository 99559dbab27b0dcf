#include "platform/linux/systemd_bus.h"

#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace nodeward::platform {

std::string BusError::text(int r) const {
  return e.message != nullptr ? absl::StrCat(e.name ? e.name : "", ": ", e.message)
                              : std::string(strerror(-r));
}

absl::StatusOr<sd_bus*> OpenSystemdBus() {
  sd_bus* b = nullptr;
  int r = sd_bus_new(&b);
  if (r >= 0) r = sd_bus_set_address(b, "unix:path=/run/systemd/private");
  if (r >= 0) r = sd_bus_start(b);
  if (r >= 0) return b;
  sd_bus_unref(b);
  b = nullptr;
  r = sd_bus_open_system(&b);
  if (r < 0) {
    return absl::UnavailableError(
        absl::StrCat("connect to systemd (/run/systemd/private, system bus): ", strerror(-r)));
  }
  return b;
}

std::string SystemdUnitPath(const std::string& unit) {
  char* p = nullptr;
  if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &p) < 0) return "";
  std::string out(p);
  free(p);
  return out;
}

}  // namespace nodeward::platform
