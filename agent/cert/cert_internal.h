#ifndef NODEWARD_AGENT_CERT_CERT_INTERNAL_H_
#define NODEWARD_AGENT_CERT_CERT_INTERNAL_H_

// Shared by the files of CertificateManager; not an interface.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "agent/cert/x509.h"
#include "agent/common/reason.h"
#include "agent/common/time_util.h"

namespace nodeward::cert::internal {

inline constexpr size_t kMaxChain = 8;
inline constexpr size_t kMaxBundle = 64;
inline constexpr size_t kMaxPendingKeyBytes = 16384;

inline bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0))) return false;
  }
  return true;
}

inline bool ValidSan(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  if (IsIpAddress(s)) return true;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '.' || c == '*')) {
      return false;
    }
  }
  return true;
}

inline absl::Status Refuse(absl::StatusCode code, absl::string_view reason_code,
                           const std::string& target, absl::string_view why) {
  return WithReason(absl::Status(code, absl::StrCat("certificate ", target, ": ", why)), reason_code);
}

}  // namespace nodeward::cert::internal

#endif  // NODEWARD_AGENT_CERT_CERT_INTERNAL_H_
