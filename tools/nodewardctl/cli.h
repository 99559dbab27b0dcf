#ifndef NODEWARD_TOOLS_NODEWARDCTL_CLI_H_
#define NODEWARD_TOOLS_NODEWARDCTL_CLI_H_

// nodewardctl's command line, declared with CLI11: every subcommand has
// --help, unknown options, missing values and missing required options are
// usage errors (a message, a pointer to --help, exit 64, EX_USAGE), and
// --version prints the version. What was parsed is handed to the command
// functions as Args.

#include <map>
#include <string>
#include <variant>
#include <vector>

namespace nodeward {

// sysexits.h EX_USAGE: the command line itself is wrong.
inline constexpr int kExitUsage = 64;

struct Args {
  // The subcommand path ("backup", "encrypt"), then positional words.
  std::vector<std::string> positional;
  // --name -> value(s); a flag that was given has the value "1".
  std::multimap<std::string, std::string> values;
  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = values.find(k);
    return it == values.end() ? def : it->second;
  }
  std::vector<std::string> All(const std::string& k) const {
    std::vector<std::string> out;
    for (auto [b, e] = values.equal_range(k); b != e; ++b) out.push_back(b->second);
    return out;
  }
  bool Has(const std::string& k) const { return values.count(k) != 0; }
};

// The parsed command, or the exit status when parsing ended the run
// (0 after --help or --version, kExitUsage after a usage error; the
// message is already printed).
std::variant<Args, int> ParseCommandLine(int argc, char** argv);

}  // namespace nodeward

#endif  // NODEWARD_TOOLS_NODEWARDCTL_CLI_H_
