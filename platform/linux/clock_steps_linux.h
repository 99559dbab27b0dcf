#ifndef NODEWARD_PLATFORM_LINUX_CLOCK_STEPS_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_CLOCK_STEPS_LINUX_H_

#include <thread>

#include "platform/clock_steps.h"

namespace nodeward::platform {

// A CLOCK_REALTIME timerfd armed far in the future with
// TFD_TIMER_CANCEL_ON_SET: its read fails with ECANCELED whenever the clock
// is set (timerfd_create(2)); the step is the change of
// CLOCK_REALTIME - CLOCK_MONOTONIC across it. An eventfd stops the thread.
class LinuxClockStepWatcher final : public ClockStepWatcher {
 public:
  ~LinuxClockStepWatcher() override;
  absl::Status Start(std::function<void(absl::Duration step)> on_step) override;

 private:
  absl::Status Arm();
  void Run(std::function<void(absl::Duration)> on_step);
  int timer_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_CLOCK_STEPS_LINUX_H_
