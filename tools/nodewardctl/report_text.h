#ifndef NODEWARD_TOOLS_NODEWARDCTL_REPORT_TEXT_H_
#define NODEWARD_TOOLS_NODEWARDCTL_REPORT_TEXT_H_

#include <ostream>

#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/state.pb.h"

namespace nodeward {

// The health report as text: state and what needs attention first (the
// conditions, most severe first), then every capability and the host.
void PrintHealthText(const nodeward::v1::HealthReport& r, std::ostream& out);
// The health text, then what only the VM sees (listener, recent commands).
void PrintStatusText(const nodeward::v1::StatusReport& r, std::ostream& out);

}  // namespace nodeward

#endif  // NODEWARD_TOOLS_NODEWARDCTL_REPORT_TEXT_H_
