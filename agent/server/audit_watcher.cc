#include "agent/server/audit_watcher.h"

#include <algorithm>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nodeward {
namespace {

using nodeward::v1::AuditBatch;

constexpr uint32_t kDefaultBatch = 256;
constexpr uint32_t kMaxBatch = 1024;

class AuditWatcher final : public grpc::ServerWriteReactor<AuditBatch> {
 public:
  AuditWatcher(const AuditLog* log, HealthPublisher* feed, uint64_t from, uint32_t batch)
      : log_(log), feed_(feed), next_(from), batch_(batch) {
    feed_->StreamOpened();
    // Subscribed first: a record made durable between the first read and
    // the subscription still wakes this stream.
    id_ = feed_->Subscribe([this](bool closing) { OnChange(closing); });
    absl::MutexLock lock(&mu_);
    WriteLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok || closing_) return FinishLocked(grpc::Status::OK);
    WriteLocked();
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    feed_->Unsubscribe(id_);
    feed_->StreamClosed();
    delete this;
  }

 private:
  void OnChange(bool closing) {
    absl::MutexLock lock(&mu_);
    if (closing) {
      closing_ = true;
      if (!writing_) FinishLocked(grpc::Status::OK);
      return;
    }
    WriteLocked();
  }
  // Sends what is durable from next_ on, if anything and nothing is in flight.
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    absl::StatusOr<std::vector<nodeward::v1::AuditRecord>> records = log_->Read(next_, batch_);
    if (!records.ok()) {
      return FinishLocked(grpc::Status(grpc::StatusCode::DATA_LOSS,
                                       std::string(records.status().message())));
    }
    if (records->empty()) return;  // woken again by the next durable append
    const AuditLog::Head head = log_->DurableHead();
    message_.Clear();
    for (auto& r : *records) *message_.add_records() = std::move(r);
    message_.set_head_records(head.records);
    message_.set_head_hash(head.hash);
    next_ += message_.records_size();
    writing_ = true;
    StartWrite(&message_);
  }
  void FinishLocked(const grpc::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  const AuditLog* const log_;
  HealthPublisher* const feed_;
  int id_ = -1;
  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_);
  const uint32_t batch_;
  AuditBatch message_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<AuditBatch>* NewAuditWatcher(
    const AuditLog* log, HealthPublisher* feed, const nodeward::v1::WatchAuditRequest& request) {
  const uint32_t batch =
      request.max_batch() == 0 ? kDefaultBatch : std::min(request.max_batch(), kMaxBatch);
  return new AuditWatcher(log, feed, request.from_index(), batch);
}

}  // namespace nodeward
