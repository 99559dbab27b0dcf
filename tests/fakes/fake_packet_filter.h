#ifndef NODEWARD_TESTS_FAKES_FAKE_PACKET_FILTER_H_
#define NODEWARD_TESTS_FAKES_FAKE_PACKET_FILTER_H_

#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "platform/filter_plan.h"
#include "platform/packet_filter.h"

namespace nodeward::platform {

// An in-memory kernel table with the kernel's transaction rules
// (platform::ApplyChange: all or nothing, references checked), a ruleset
// generation id, and a monitor. Tests inject a refused transaction, a lost
// ack (committed but reported UNKNOWN), and other writers' changes.
class FakePacketFilter final : public PacketFilter {
 public:
  absl::StatusOr<KernelTable> Read() override {
    absl::MutexLock lock(&mu_);
    ++reads_;
    // As the real read-back: digests of what is there now, whoever edited it.
    KernelTable t = table_;
    for (FilterSet& set : t.ruleset.sets) set.digest = platform::SetDigest(set);
    return t;
  }
  absl::StatusOr<uint32_t> Commit(const FilterChange& change, uint32_t genid) override {
    absl::MutexLock lock(&mu_);
    absl::StatusCode c = fail_;
    fail_ = absl::StatusCode::kOk;
    if (c != absl::StatusCode::kOk && c != absl::StatusCode::kUnknown) {
      return absl::Status(c, "injected failure");
    }
    if (genid != table_.genid) return absl::AbortedError("generation moved");
    if (change.empty()) return genid;
    absl::Status s = ApplyChange(change, &table_);
    if (!s.ok()) return s;
    ++table_.genid;
    ++commits_;
    last_change_ = change;
    events_.push_back(FilterEvent{table_.genid, true, true, 1, "self", "", false});
    if (c == absl::StatusCode::kUnknown) return absl::UnknownError("acks lost");
    return table_.genid;
  }
  absl::StatusOr<std::unique_ptr<FilterWatch>> Watch() override {
    return std::unique_ptr<FilterWatch>(new Watcher(this));
  }
  absl::StatusOr<std::vector<std::string>> ForeignDrops() override {
    absl::MutexLock lock(&mu_);
    return foreign_drops_;
  }
  void SetForeignDrops(std::vector<std::string> d) {
    absl::MutexLock lock(&mu_);
    foreign_drops_ = std::move(d);
  }

  // Next Commit fails with `code` and changes nothing; kUnknown instead
  // commits and then reports the outcome as unknown (acks lost).
  void FailNext(absl::StatusCode code) {
    absl::MutexLock lock(&mu_);
    fail_ = code;
  }
  // Another process edits the agent's table (touched) or another table.
  void ForeignChange(const std::function<void(KernelTable*)>& edit, bool touches_table = true) {
    absl::MutexLock lock(&mu_);
    edit(&table_);
    ++table_.genid;
    events_.push_back(FilterEvent{table_.genid, touches_table, false, 4242, "nft",
                                  touches_table ? "rule added" : "", false});
    events_.back().table_deleted = touches_table && !table_.exists;
  }
  std::optional<FilterRuleset> table() const {
    absl::MutexLock lock(&mu_);
    if (!table_.exists) return std::nullopt;
    return table_.ruleset;
  }
  uint32_t genid() const {
    absl::MutexLock lock(&mu_);
    return table_.genid;
  }
  int commits() const {
    absl::MutexLock lock(&mu_);
    return commits_;
  }
  int reads() const {
    absl::MutexLock lock(&mu_);
    return reads_;
  }
  FilterChange last_change() const {
    absl::MutexLock lock(&mu_);
    return last_change_;
  }

 private:
  class Watcher final : public FilterWatch {
   public:
    explicit Watcher(FakePacketFilter* f) : f_(f) {}
    absl::StatusOr<std::vector<FilterEvent>> Wait(absl::Duration) override {
      absl::MutexLock lock(&f_->mu_);
      std::vector<FilterEvent> out(f_->events_.begin(), f_->events_.end());
      f_->events_.clear();
      return out;
    }

   private:
    FakePacketFilter* f_;
  };

  mutable absl::Mutex mu_;
  KernelTable table_{1, false, false, {}};
  std::deque<FilterEvent> events_;
  std::vector<std::string> foreign_drops_;
  FilterChange last_change_;
  int commits_ = 0;
  int reads_ = 0;
  absl::StatusCode fail_ = absl::StatusCode::kOk;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_PACKET_FILTER_H_
