#ifndef NODEWARD_AGENT_SERVER_COMMAND_EXECUTOR_H_
#define NODEWARD_AGENT_SERVER_COMMAND_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nodeward {

// A fixed pool of command threads with a bounded queue. gRPC callback
// handlers must not block (fsync, later cryptsetup); they post the command
// here and finish their reactor from the pool. Several threads let the
// journal writes of concurrent commands share one fdatasync. Thread-safe.
class CommandExecutor {
 public:
  CommandExecutor(size_t threads, size_t max_queue);
  ~CommandExecutor();

  // False if the queue is full or the executor stopped: the caller refuses
  // the command (it was not started).
  bool Post(std::function<void()> task);
  // Runs what is queued, then joins the threads. Idempotent.
  void Stop();

 private:
  void Work();

  const size_t max_queue_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_COMMAND_EXECUTOR_H_
