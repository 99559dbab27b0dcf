#ifndef NODEWARD_PLATFORM_LOGINS_H_
#define NODEWARD_PLATFORM_LOGINS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nodeward::platform {

// A login session as the login manager (systemd-logind) knows it.
struct LoginSession {
  std::string id;
  uint32_t uid = 0;
  std::string user;
  std::string remote_host;  // "" for a local login
  std::string service;      // the PAM service: "sshd", "login", "su", ...
  std::string tty;
  std::string session_class;  // "user", "greeter", "background", ...
  absl::Time started_at;
};

// Login sessions: who is logged in, and ending their sessions (revoke).
// Thread-safe.
class Logins {
 public:
  virtual ~Logins() = default;
  // Every session now.
  virtual absl::StatusOr<std::vector<LoginSession>> Sessions() = 0;
  // Ends every session of `uid` (logind TerminateUser). NOT_FOUND if the
  // user has none.
  virtual absl::Status TerminateUser(uint32_t uid) = 0;
  // The uid of an account (NOT_FOUND if none).
  virtual absl::StatusOr<uint32_t> UidOf(const std::string& account) = 0;
};

using LoginsPtr = std::unique_ptr<Logins>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LOGINS_H_
