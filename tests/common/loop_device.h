#ifndef NODEWARD_TESTS_COMMON_LOOP_DEVICE_H_
#define NODEWARD_TESTS_COMMON_LOOP_DEVICE_H_

// A loop device on a sparse file the test made, detached at the end.

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/common/shell.h"

namespace nodeward::testing {

class LoopDevice {
 public:
  explicit LoopDevice(const std::string& dir, const std::string& name, int mb = 64) {
    file = absl::StrCat(dir, "/", name, ".img");
    std::string out;
    ok = Sh(absl::StrCat("truncate -s ", mb, "M ", file), &out) == 0 &&
         Sh(absl::StrCat("losetup -f --show ", file), &out) == 0;
    path = std::string(absl::StripAsciiWhitespace(out));
    ok = ok && absl::StartsWith(path, "/dev/loop");
  }
  ~LoopDevice() {
    if (ok) Sh("losetup -d " + path);
  }
  std::string file, path;
  bool ok = false;
};

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_COMMON_LOOP_DEVICE_H_
