#include "platform/linux/mountinfo.h"

#include <sys/sysmacros.h>

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace nodeward::platform {
namespace {

// Mount points escape space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        const char c = s[i + k];
        ok = ok && c >= '0' && c <= '7';
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

std::vector<MountInfo> ReadMountInfo() {
  std::vector<MountInfo> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 5) continue;
    std::vector<std::string> mm = absl::StrSplit(f[2], ':');
    unsigned maj = 0, min = 0;
    MountInfo m;
    if (!absl::SimpleAtoi(f[0], &m.id) || !absl::SimpleAtoi(f[1], &m.parent_id) ||
        mm.size() != 2 || !absl::SimpleAtoi(mm[0], &maj) || !absl::SimpleAtoi(mm[1], &min)) {
      continue;
    }
    m.dev = makedev(maj, min);
    m.target = Unescape(f[4]);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace nodeward::platform
