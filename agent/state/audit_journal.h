#ifndef NODEWARD_AGENT_STATE_AUDIT_JOURNAL_H_
#define NODEWARD_AGENT_STATE_AUDIT_JOURNAL_H_

// Each durable audit record as one structured journal entry: one per
// command received (applied, replayed, rejected, failed), per early refusal,
// per drift repair, volume and wipe step, and per agent event, with fields
// an operator can filter on (`journalctl -u nodeward-agent
// COMMAND_TYPE=wipe`, `OUTCOME=rejected`). The record holds no key
// material (docs/state.md), so neither does the entry.

#include <string>
#include <utility>
#include <vector>

#include "nodeward/v1/state.pb.h"

namespace nodeward {

struct JournalEntry {
  int priority = 6;  // syslog: 4 warning for refusals, failures and drift, 6 info
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields;
};

JournalEntry ForJournal(const nodeward::v1::AuditRecord& record);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_STATE_AUDIT_JOURNAL_H_
