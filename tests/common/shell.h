#ifndef NODEWARD_TESTS_COMMON_SHELL_H_
#define NODEWARD_TESTS_COMMON_SHELL_H_

// Plain C++ and POSIX only: also used by the vm tier's driver, which runs
// inside the VM without gtest or Abseil.

#include <cstdio>
#include <string>

namespace nodeward::testing {

// Runs a shell command (stderr joined to stdout); returns pclose's status
// (0 on success), the output in `out`.
inline int Sh(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  int rc = pclose(p);
  if (out != nullptr) *out = text;
  return rc;
}

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_COMMON_SHELL_H_
