#ifndef NODEWARD_PLATFORM_CLOCK_H_
#define NODEWARD_PLATFORM_CLOCK_H_

#include <memory>

#include "absl/time/time.h"

namespace nodeward::platform {

// Wall-clock time. Thread-safe. Injected so tests never read the real clock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
};

// The system's CLOCK_REALTIME.
class SystemClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
};

using ClockPtr = std::unique_ptr<Clock>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_CLOCK_H_
