#include "platform/linux/journal_linux.h"

#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace nodeward::platform {

SystemdJournal::SystemdJournal() : journald_(getenv("JOURNAL_STREAM") != nullptr) {}

void SystemdJournal::Send(int priority, const std::string& message,
                          const std::vector<std::pair<std::string, std::string>>& fields) {
  if (!journald_) {
    std::string line = absl::StrCat("<", priority, ">", message);
    for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", v);
    line.push_back('\n');
    fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  std::vector<std::string> items;
  items.reserve(fields.size() + 3);
  items.push_back(absl::StrCat("MESSAGE=", message));
  items.push_back(absl::StrCat("PRIORITY=", priority));
  items.push_back("SYSLOG_IDENTIFIER=nodeward-agent");
  for (const auto& [k, v] : fields) items.push_back(absl::StrCat(k, "=", v));
  std::vector<iovec> iov;
  iov.reserve(items.size());
  for (std::string& i : items) iov.push_back(iovec{i.data(), i.size()});
  sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

}  // namespace nodeward::platform
