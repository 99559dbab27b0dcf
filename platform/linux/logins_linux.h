#ifndef NODEWARD_PLATFORM_LINUX_LOGINS_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_LOGINS_LINUX_H_

#include "platform/logins.h"

namespace nodeward::platform {

// systemd-logind: sessions through sd-login (sd_get_sessions and the
// sd_session_get_* calls; the start time from /run/systemd/sessions/<id>,
// which systemd 252 has no call for), TerminateUser over the system bus.
class LogindLogins final : public Logins {
 public:
  absl::StatusOr<std::vector<LoginSession>> Sessions() override;
  absl::Status TerminateUser(uint32_t uid) override;
  absl::StatusOr<uint32_t> UidOf(const std::string& account) override;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_LOGINS_LINUX_H_
