#ifndef NODEWARD_TESTS_FAKES_FAKE_HOST_H_
#define NODEWARD_TESTS_FAKES_FAKE_HOST_H_

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "platform/host.h"

namespace nodeward::platform {

// Host figures set by the test; a path without a disk entry fails statvfs.
class FakeHostProbe final : public HostProbe {
 public:
  FakeHostProbe() {
    sample_.uptime_seconds = 100;
    sample_.cpus = 2;
    sample_.memory_total_bytes = 8ull << 30;
    sample_.memory_available_bytes = 6ull << 30;
    sample_.clock_known = true;
    sample_.clock_synchronised = true;
  }
  absl::StatusOr<HostSample> Sample() override {
    absl::MutexLock lock(&mu_);
    if (!fail_.ok()) return fail_;
    return sample_;
  }
  absl::StatusOr<DiskSample> Disk(const std::string& path) override {
    absl::MutexLock lock(&mu_);
    auto it = disks_.find(path);
    if (it == disks_.end()) {
      DiskSample d;
      d.total_bytes = 10ull << 30;
      d.available_bytes = 5ull << 30;
      d.free_inodes = 1000;
      return d;
    }
    return it->second;
  }
  void Set(const HostSample& s) {
    absl::MutexLock lock(&mu_);
    sample_ = s;
  }
  HostSample Get() {
    absl::MutexLock lock(&mu_);
    return sample_;
  }
  void SetDisk(const std::string& path, DiskSample d) {
    absl::MutexLock lock(&mu_);
    disks_[path] = d;
  }
  void Fail(absl::Status s) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(s);
  }

 private:
  absl::Mutex mu_;
  HostSample sample_;
  std::map<std::string, DiskSample> disks_;
  absl::Status fail_;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_HOST_H_
