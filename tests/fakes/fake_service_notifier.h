#ifndef NODEWARD_TESTS_FAKES_FAKE_SERVICE_NOTIFIER_H_
#define NODEWARD_TESTS_FAKES_FAKE_SERVICE_NOTIFIER_H_

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "platform/service_notifier.h"

namespace nodeward::platform {

class FakeServiceNotifier final : public ServiceNotifier {
 public:
  void Notify(const std::string& state) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(state);
  }
  std::vector<std::string> messages() {
    absl::MutexLock lock(&mu_);
    return messages_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> messages_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_SERVICE_NOTIFIER_H_
