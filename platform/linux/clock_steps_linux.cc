#include "platform/linux/clock_steps_linux.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace nodeward::platform {
namespace {

// CLOCK_REALTIME - CLOCK_MONOTONIC: constant while the clock only slews.
absl::Duration WallOffset() {
  timespec wall{}, mono{};
  clock_gettime(CLOCK_REALTIME, &wall);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return absl::DurationFromTimespec(wall) - absl::DurationFromTimespec(mono);
}

}  // namespace

LinuxClockStepWatcher::~LinuxClockStepWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (timer_fd_ >= 0) close(timer_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

absl::Status LinuxClockStepWatcher::Arm() {
  // Any absolute expiry works; far away so that it never fires.
  itimerspec spec{};
  clock_gettime(CLOCK_REALTIME, &spec.it_value);
  spec.it_value.tv_sec += 10LL * 365 * 24 * 3600;
  if (timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &spec, nullptr) != 0) {
    return absl::ErrnoToStatus(errno, "watch clock steps: timerfd_settime");
  }
  return absl::OkStatus();
}

absl::Status LinuxClockStepWatcher::Start(std::function<void(absl::Duration)> on_step) {
  if (thread_.joinable()) return absl::FailedPreconditionError("watch clock steps: started twice");
  timer_fd_ = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
  if (timer_fd_ < 0) return absl::ErrnoToStatus(errno, "watch clock steps: timerfd_create");
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return absl::ErrnoToStatus(errno, "watch clock steps: eventfd");
  if (absl::Status s = Arm(); !s.ok()) return s;
  thread_ = std::thread([this, on_step = std::move(on_step)] { Run(on_step); });
  return absl::OkStatus();
}

void LinuxClockStepWatcher::Run(std::function<void(absl::Duration)> on_step) {
  absl::Duration offset = WallOffset();
  while (true) {
    pollfd fds[2] = {{timer_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    uint64_t expirations = 0;
    if (read(timer_fd_, &expirations, sizeof(expirations)) < 0 && errno == ECANCELED) {
      const absl::Duration now = WallOffset();
      const absl::Duration step = now - offset;
      offset = now;
      // A cancelled timer must be armed again to see the next step.
      if (!Arm().ok()) return;
      on_step(step);
    }
  }
}

}  // namespace nodeward::platform
