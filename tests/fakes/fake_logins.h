#ifndef NODEWARD_TESTS_FAKES_FAKE_LOGINS_H_
#define NODEWARD_TESTS_FAKES_FAKE_LOGINS_H_

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "platform/logins.h"

namespace nodeward::platform {

// Sessions the test opens and closes; TerminateUser closes a user's.
class FakeLogins final : public Logins {
 public:
  void Open(LoginSession s) {
    absl::MutexLock lock(&mu_);
    sessions_.push_back(std::move(s));
  }
  void Close(const std::string& id) {
    absl::MutexLock lock(&mu_);
    sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                   [&](const LoginSession& s) { return s.id == id; }),
                    sessions_.end());
  }
  void FailSessions(absl::Status s) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(s);
  }
  void AddAccount(const std::string& name, uint32_t uid) {
    absl::MutexLock lock(&mu_);
    accounts_[name] = uid;
  }
  std::vector<uint32_t> terminated() {
    absl::MutexLock lock(&mu_);
    return terminated_;
  }

  absl::StatusOr<std::vector<LoginSession>> Sessions() override {
    absl::MutexLock lock(&mu_);
    if (!fail_.ok()) return fail_;
    return sessions_;
  }
  absl::Status TerminateUser(uint32_t uid) override {
    absl::MutexLock lock(&mu_);
    const size_t before = sessions_.size();
    sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                   [&](const LoginSession& s) { return s.uid == uid; }),
                    sessions_.end());
    if (sessions_.size() == before) return absl::NotFoundError(absl::StrCat("no sessions of ", uid));
    terminated_.push_back(uid);
    return absl::OkStatus();
  }
  absl::StatusOr<uint32_t> UidOf(const std::string& account) override {
    absl::MutexLock lock(&mu_);
    auto it = accounts_.find(account);
    if (it == accounts_.end()) return absl::NotFoundError(absl::StrCat("no account ", account));
    return it->second;
  }

 private:
  absl::Mutex mu_;
  std::vector<LoginSession> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint32_t> accounts_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> terminated_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_LOGINS_H_
