#include "platform/linux/service_control_linux.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"
#include "platform/linux/systemd_bus.h"

namespace nodeward::platform {
namespace {

// A reload that takes longer is a failure (the certificate is rolled back).
constexpr auto kJobDeadline = std::chrono::seconds(90);

struct JobWait {
  std::string job;  // object path, known once the call returned
  bool done = false;
  std::string result;
};

int OnJobRemoved(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* w = static_cast<JobWait*>(userdata);
  uint32_t id = 0;
  const char* path = nullptr;
  const char* unit = nullptr;
  const char* result = nullptr;
  if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0) return 0;
  if (!w->job.empty() && w->job == path) {
    w->done = true;
    w->result = result;
  }
  return 0;
}

}  // namespace

SystemdServiceControl::~SystemdServiceControl() { sd_bus_flush_close_unref(bus_); }

absl::Status SystemdServiceControl::ActiveOrWhy(const std::string& unit) {
  BusError err;
  char* state = nullptr;
  const int r = sd_bus_get_property_string(bus_, kSystemdService, SystemdUnitPath(unit).c_str(),
                                           kSystemdUnit, "ActiveState", &err.e, &state);
  const std::string s = r >= 0 && state != nullptr ? state : "";
  free(state);
  if (r < 0) return absl::UnavailableError(absl::StrCat("read ", unit, " state: ", err.text(r)));
  if (s != "active") return absl::FailedPreconditionError(absl::StrCat(unit, " is ", s));
  return absl::OkStatus();
}

absl::Status SystemdServiceControl::Reload(const std::string& unit, bool restart) {
  if (bus_ == nullptr) {
    ASSIGN_OR_RETURN(bus_, OpenSystemdBus());
  }
  {
    BusError err;
    const int r = sd_bus_call_method(bus_, kSystemdService, kSystemdManagerPath, kSystemdManager,
                                     "Subscribe", &err.e, nullptr, "");
    if (r < 0 && !sd_bus_error_has_name(&err.e, "org.freedesktop.systemd1.AlreadySubscribed")) {
      return absl::UnavailableError(absl::StrCat("subscribe to systemd: ", err.text(r)));
    }
  }
  JobWait wait;
  sd_bus_slot* slot = nullptr;
  int r = sd_bus_match_signal(bus_, &slot, kSystemdService, kSystemdManagerPath, kSystemdManager,
                              "JobRemoved", OnJobRemoved, &wait);
  if (r < 0) return absl::UnavailableError(absl::StrCat("watch systemd jobs: ", strerror(-r)));
  BusError err;
  BusMessage reply;
  r = sd_bus_call_method(bus_, kSystemdService, kSystemdManagerPath, kSystemdManager,
                         restart ? "RestartUnit" : "ReloadUnit", &err.e, &reply.m, "ss",
                         unit.c_str(), "replace");
  const char* job = nullptr;
  if (r >= 0) r = sd_bus_message_read(reply.m, "o", &job);
  if (r < 0) {
    sd_bus_slot_unref(slot);
    return absl::FailedPreconditionError(
        absl::StrCat(restart ? "restart " : "reload ", unit, ": ", err.text(r)));
  }
  wait.job = job;
  const auto deadline = std::chrono::steady_clock::now() + kJobDeadline;
  while (!wait.done && std::chrono::steady_clock::now() < deadline) {
    r = sd_bus_process(bus_, nullptr);
    if (r < 0) break;
    if (r == 0) sd_bus_wait(bus_, 200 * 1000);
  }
  sd_bus_slot_unref(slot);
  if (!wait.done) {
    return absl::DeadlineExceededError(
        absl::StrCat(restart ? "restart " : "reload ", unit, ": no result in ", kJobDeadline.count(),
                     " s"));
  }
  if (wait.result != "done") {
    return absl::FailedPreconditionError(
        absl::StrCat(restart ? "restart " : "reload ", unit, ": job ", wait.result));
  }
  return ActiveOrWhy(unit);
}

absl::Status SystemdServiceControl::Signal(const std::string& unit, int signal) {
  if (bus_ == nullptr) {
    ASSIGN_OR_RETURN(bus_, OpenSystemdBus());
  }
  BusError err;
  const int r = sd_bus_call_method(bus_, kSystemdService, kSystemdManagerPath, kSystemdManager,
                                   "KillUnit", &err.e, nullptr, "ssi", unit.c_str(), "main", signal);
  if (r < 0) {
    return absl::FailedPreconditionError(absl::StrCat("signal ", signal, " to ", unit, ": ",
                                                      err.text(r)));
  }
  return ActiveOrWhy(unit);
}

}  // namespace nodeward::platform
