#include "agent/state/audit_journal.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nodeward {
namespace {

// One line, bounded: a message comes from a handler or a peer's input.
std::string Clean(const std::string& s, size_t max = 400) {
  std::string out;
  for (char c : s.substr(0, max)) out.push_back(c == '\n' || c == '\r' ? ' ' : c);
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace

JournalEntry ForJournal(const nodeward::v1::AuditRecord& r) {
  JournalEntry e;
  auto field = [&](const char* name, const std::string& value) {
    if (!value.empty()) e.fields.emplace_back(name, Clean(value));
  };
  field("AUDIT_INDEX", absl::StrCat(r.index()));
  field("AUDIT_HASH", r.hash());
  field("PEER", r.peer());
  field("RPC", r.rpc());
  if (!r.event().empty()) {
    field("EVENT", r.event());
    e.priority = r.event() == "firewall_drift" || r.event() == "audit_tail_cut" ? 4 : 6;
    e.message = Clean(absl::StrCat(r.event(), r.message().empty() ? "" : ": ", r.message()));
    return e;
  }
  field("COMMAND_ID", r.command_id());
  if (r.sequence() != 0) field("SEQUENCE", absl::StrCat(r.sequence()));
  field("COMMAND_TYPE", r.command_type());
  field("SIGNERS", absl::StrJoin(r.signer_key_ids(), ","));
  // OUTCOME: applied, replayed, rejected or failed (the record's decision).
  field("OUTCOME", r.decision());
  field("REASON", r.reason());
  if (r.rpc().empty()) field("DURATION_MS", absl::StrCat(r.duration_ms()));
  e.priority = r.decision() == "applied" || r.decision() == "replayed" ? 6 : 4;
  e.message = Clean(absl::StrCat(
      "command ", r.command_id().empty() ? std::string("(unparsed)") : r.command_id(),
      r.command_type().empty() ? "" : absl::StrCat(" ", r.command_type()),
      r.sequence() != 0 ? absl::StrCat(" seq ", r.sequence()) : "", ": ", r.decision(),
      r.reason().empty() ? "" : absl::StrCat(" (", r.reason(), ")"),
      r.message().empty() ? "" : absl::StrCat(": ", r.message())));
  return e;
}

}  // namespace nodeward
