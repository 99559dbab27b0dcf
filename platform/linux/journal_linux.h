#ifndef NODEWARD_PLATFORM_LINUX_JOURNAL_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_JOURNAL_LINUX_H_

#include "platform/journal.h"

namespace nodeward::platform {

// sd_journal_sendv when the process runs under systemd with its stderr on
// the journal ($JOURNAL_STREAM set): one entry with MESSAGE, PRIORITY and
// the fields, so `journalctl -u nodeward-agent COMMAND_TYPE=wipe` finds it.
// Otherwise (tests, the demo, a terminal) one line on stderr with the
// fields appended.
class SystemdJournal final : public Journal {
 public:
  SystemdJournal();
  void Send(int priority, const std::string& message,
            const std::vector<std::pair<std::string, std::string>>& fields) override;

 private:
  bool journald_;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_JOURNAL_LINUX_H_
