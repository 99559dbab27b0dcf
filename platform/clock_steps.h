#ifndef NODEWARD_PLATFORM_CLOCK_STEPS_H_
#define NODEWARD_PLATFORM_CLOCK_STEPS_H_

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace nodeward::platform {

// Tells when the wall clock is stepped (set, not slewed): an NTP step, an
// admin's `date -s`, a VM resumed and corrected after a pause. Certificate
// horizons and command validity windows are reckoned on the wall clock, so
// the agent recomputes and pushes health at once.
class ClockStepWatcher {
 public:
  virtual ~ClockStepWatcher() = default;
  // Calls on_step(step) from a thread of its own after each step; `step` is
  // how far the wall clock moved against the monotonic clock (positive:
  // forward). Stops before the destructor returns.
  virtual absl::Status Start(std::function<void(absl::Duration step)> on_step) = 0;
};

using ClockStepWatcherPtr = std::unique_ptr<ClockStepWatcher>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_CLOCK_STEPS_H_
