#ifndef NODEWARD_TESTS_FAKES_FAKE_CONNTRACK_H_
#define NODEWARD_TESTS_FAKES_FAKE_CONNTRACK_H_

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "platform/conntrack.h"

namespace nodeward::platform {

class FakeConntrack final : public Conntrack {
 public:
  absl::StatusOr<std::vector<ConnEntry>> List() override {
    if (fail_list_.has_value()) return *fail_list_;
    return entries_;
  }
  absl::Status Delete(const ConnEntry& e) override {
    entries_.erase(std::remove(entries_.begin(), entries_.end(), e), entries_.end());
    ++deletes_;
    return absl::OkStatus();
  }
  void Add(ConnEntry e) { entries_.push_back(e); }
  const std::vector<ConnEntry>& entries() const { return entries_; }
  int deletes() const { return deletes_; }
  void FailList(std::optional<absl::Status> s) { fail_list_ = std::move(s); }

 private:
  std::vector<ConnEntry> entries_;
  std::optional<absl::Status> fail_list_;
  int deletes_ = 0;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_CONNTRACK_H_
