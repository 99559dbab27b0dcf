#ifndef NODEWARD_AGENT_BACKUP_WORKER_H_
#define NODEWARD_AGENT_BACKUP_WORKER_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace nodeward::backup {

// A second core for the cipher (and, encrypting, the read): HMAC-SHA256 is
// the slower half (1.7 GB/s against AES-256-CTR's 7 GB/s on this machine
// kind), so with the cipher beside it a chunk costs the MAC's time alone
// instead of the sum. One worker thread for the whole file; Start/Wait hand
// each chunk's job over. The caller must Wait before it touches what the job
// writes, or returns.
class Worker {
 public:
  Worker() : thread_([this] { Run(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  void Start(std::function<bool()> job) {
    {
      std::lock_guard<std::mutex> l(mu_);
      job_ = std::move(job);
      pending_ = true;
    }
    cv_.notify_all();
  }
  // The job's result; true (and immediate) when nothing is pending.
  bool Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return !pending_; });
    const bool ok = ok_;
    ok_ = true;
    return ok;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [this] { return pending_ || stop_; });
      if (stop_) return;
      std::function<bool()> job = std::move(job_);
      l.unlock();
      const bool ok = job();
      l.lock();
      ok_ = ok;
      pending_ = false;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<bool()> job_;
  bool pending_ = false;
  bool ok_ = true;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is initialised
};

}  // namespace nodeward::backup

#endif  // NODEWARD_AGENT_BACKUP_WORKER_H_
