#include "agent/server/health_publisher.h"

namespace nodeward {

int HealthPublisher::Subscribe(Callback callback) {
  absl::MutexLock lock(&mu_);
  int id = next_id_++;
  if (closed_) {
    callback(true);
    return id;
  }
  subscribers_.emplace(id, std::move(callback));
  return id;
}

void HealthPublisher::Unsubscribe(int id) {
  absl::MutexLock lock(&mu_);
  subscribers_.erase(id);
}

void HealthPublisher::Publish() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, cb] : subscribers_) cb(false);
}

void HealthPublisher::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (auto& [id, cb] : subscribers_) cb(true);
}

}  // namespace nodeward
