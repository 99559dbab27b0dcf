#ifndef NODEWARD_TESTS_FAKES_FAKE_PACKET_FILTER_H_
#define NODEWARD_TESTS_FAKES_FAKE_PACKET_FILTER_H_

#include <optional>

#include "platform/packet_filter.h"

namespace nodeward::platform {

// The table as the last successful ReplaceTable left it; FailNext makes the
// next call fail without changing it (as a refused kernel transaction).
class FakePacketFilter final : public PacketFilter {
 public:
  absl::Status ReplaceTable(const FilterRuleset& ruleset) override {
    if (absl::Status s = Take(); !s.ok()) return s;
    table_ = ruleset;
    ++replaces_;
    return absl::OkStatus();
  }
  absl::Status DeleteTable() override {
    if (absl::Status s = Take(); !s.ok()) return s;
    table_.reset();
    return absl::OkStatus();
  }
  absl::StatusOr<bool> TableExists() override { return table_.has_value(); }

  void FailNext(absl::StatusCode code) { fail_ = code; }
  const std::optional<FilterRuleset>& table() const { return table_; }
  int replaces() const { return replaces_; }

 private:
  absl::Status Take() {
    absl::StatusCode c = fail_;
    fail_ = absl::StatusCode::kOk;
    return c == absl::StatusCode::kOk ? absl::OkStatus() : absl::Status(c, "injected failure");
  }
  std::optional<FilterRuleset> table_;
  int replaces_ = 0;
  absl::StatusCode fail_ = absl::StatusCode::kOk;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_PACKET_FILTER_H_
