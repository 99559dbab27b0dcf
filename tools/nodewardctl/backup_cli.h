#ifndef NODEWARD_TOOLS_NODEWARDCTL_BACKUP_CLI_H_
#define NODEWARD_TOOLS_NODEWARDCTL_BACKUP_CLI_H_

#include <map>
#include <string>
#include <vector>

namespace nodeward {

// `nodewardctl backup keygen|encrypt|decrypt|inspect`. `words` are the
// positional arguments after "backup"; `options` the --name value pairs
// (repeatable ones appear several times). Returns the process exit code:
// 0 done; 1 usage or I/O error; 2 integrity failure (modified, truncated,
// appended, reordered); 3 no given private key opens the file; 4 not a
// backup, unknown version or unusable key. On any non-zero exit nothing is
// left at --out.
int RunBackupCommand(const std::vector<std::string>& words,
                     const std::multimap<std::string, std::string>& options);

}  // namespace nodeward

#endif  // NODEWARD_TOOLS_NODEWARDCTL_BACKUP_CLI_H_
