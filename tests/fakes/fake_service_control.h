#ifndef NODEWARD_TESTS_FAKES_FAKE_SERVICE_CONTROL_H_
#define NODEWARD_TESTS_FAKES_FAKE_SERVICE_CONTROL_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "platform/service_control.h"

namespace nodeward::platform {

// Records every reload and signal; `on_reload` decides each outcome (it
// may look at what the files say at that moment).
class FakeServiceControl final : public ServiceControl {
 public:
  absl::Status Reload(const std::string& unit, bool restart) override {
    calls.push_back(absl::StrCat(restart ? "restart " : "reload ", unit));
    return on_reload ? on_reload() : absl::OkStatus();
  }
  absl::Status Signal(const std::string& unit, int signal) override {
    calls.push_back(absl::StrCat("signal ", signal, " ", unit));
    return on_reload ? on_reload() : absl::OkStatus();
  }
  std::vector<std::string> calls;
  std::function<absl::Status()> on_reload;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_SERVICE_CONTROL_H_
