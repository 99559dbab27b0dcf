#ifndef NODEWARD_AGENT_SERVER_HEALTH_CONDITIONS_H_
#define NODEWARD_AGENT_SERVER_HEALTH_CONDITIONS_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/config.pb.h"

namespace nodeward {

// The thresholds of the condition rules, from HealthConfig with defaults.
struct HealthPolicy {
  bool require_clock_sync = false;
  uint32_t min_free_disk_percent = 5;
  uint64_t min_free_disk_bytes = 256ull << 20;
  uint32_t min_available_memory_percent = 5;
  absl::Duration firewall_verify_max_age = absl::Seconds(90);
};
HealthPolicy ToHealthPolicy(const nodeward::v1::HealthConfig& c,
                            uint32_t firewall_readback_interval_seconds);

// A condition with the severity and blocking of its type (docs/health.md's
// table is this function).
nodeward::v1::Condition MakeCondition(nodeward::v1::Condition::Type type, std::string subject,
                                      std::string message, const HealthPolicy& policy);

// The state the conditions lead to: STOPPING while draining; NOT_ACCEPTING
// when one blocks commands; DEGRADED when one is WARNING or CRITICAL;
// SERVING otherwise.
nodeward::v1::HealthReport::State StateFor(const std::vector<nodeward::v1::Condition>& conditions,
                                           bool draining);

// Sorts (most severe first, then type, then subject), drops duplicates of
// one type and subject.
void Normalise(std::vector<nodeward::v1::Condition>* conditions);

// Remembers when each (type, subject) was first seen, so `since` stays put
// while a condition holds and starts again when it comes back. Thread-safe.
class ConditionTracker {
 public:
  void Stamp(std::vector<nodeward::v1::Condition>* conditions, absl::Time now);

 private:
  absl::Mutex mu_;
  std::map<std::pair<int, std::string>, absl::Time> since_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_HEALTH_CONDITIONS_H_
