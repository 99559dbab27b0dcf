#ifndef NODEWARD_AGENT_SERVER_HEALTH_PUBLISHER_H_
#define NODEWARD_AGENT_SERVER_HEALTH_PUBLISHER_H_

#include <atomic>
#include <functional>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nodeward {

// Fan-out of "health changed" to WatchHealth streams. Thread-safe. A
// subscriber's callback runs under the publisher's lock, so after
// Unsubscribe returns it is never called again.
class HealthPublisher {
 public:
  // closing=true: the agent is stopping; finish the stream.
  using Callback = std::function<void(bool closing)>;

  int Subscribe(Callback callback);
  void Unsubscribe(int id);
  void Publish();
  // Tells every subscriber to finish; later subscribers are told at once.
  void Close();
  // WatchHealth streams open now: counted from the stream's start (before
  // its first report) to its end. Lock-free: a report builder may ask.
  void StreamOpened() { count_.fetch_add(1); }
  void StreamClosed() { count_.fetch_sub(1); }
  int streams() const { return count_.load(); }

 private:
  absl::Mutex mu_;
  std::atomic<int> count_{0};
  int next_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::map<int, Callback> subscribers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_HEALTH_PUBLISHER_H_
