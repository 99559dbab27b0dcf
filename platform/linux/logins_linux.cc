#include "platform/linux/logins_linux.h"

#include <pwd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>

#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "platform/linux/systemd_bus.h"

namespace nodeward::platform {
namespace {

std::string Take(char* s) {
  std::string out = s == nullptr ? "" : s;
  free(s);
  return out;
}

std::string UserName(uid_t uid) {
  passwd pw;
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return absl::StrCat(uid);
  }
  return pw.pw_name;
}

// REALTIME= (microseconds) of logind's record of the session.
absl::Time StartedAt(const std::string& id) {
  std::ifstream in("/run/systemd/sessions/" + id);
  std::string line;
  while (std::getline(in, line)) {
    int64_t us = 0;
    if (absl::StartsWith(line, "REALTIME=") && absl::SimpleAtoi(line.substr(9), &us)) {
      return absl::FromUnixMicros(us);
    }
  }
  return absl::InfinitePast();
}

}  // namespace

absl::StatusOr<std::vector<LoginSession>> LogindLogins::Sessions() {
  char** ids = nullptr;
  const int n = sd_get_sessions(&ids);
  if (n < 0) return absl::ErrnoToStatus(-n, "list login sessions (sd_get_sessions)");
  std::vector<LoginSession> out;
  for (int i = 0; i < n; ++i) {
    LoginSession s;
    s.id = ids[i];
    free(ids[i]);
    uid_t uid = 0;
    if (sd_session_get_uid(s.id.c_str(), &uid) < 0) continue;  // ended meanwhile
    s.uid = uid;
    s.user = UserName(uid);
    char* v = nullptr;
    if (sd_session_get_remote_host(s.id.c_str(), &v) >= 0) s.remote_host = Take(v);
    v = nullptr;
    if (sd_session_get_service(s.id.c_str(), &v) >= 0) s.service = Take(v);
    v = nullptr;
    if (sd_session_get_tty(s.id.c_str(), &v) >= 0) s.tty = Take(v);
    v = nullptr;
    if (sd_session_get_class(s.id.c_str(), &v) >= 0) s.session_class = Take(v);
    s.started_at = StartedAt(s.id);
    out.push_back(std::move(s));
  }
  free(ids);
  return out;
}

absl::Status LogindLogins::TerminateUser(uint32_t uid) {
  sd_bus* bus = nullptr;
  int r = sd_bus_open_system(&bus);
  if (r < 0) return absl::ErrnoToStatus(-r, "terminate sessions: connect to the system bus");
  BusError error;
  r = sd_bus_call_method(bus, "org.freedesktop.login1", "/org/freedesktop/login1",
                         "org.freedesktop.login1.Manager", "TerminateUser", &error.e, nullptr,
                         "u", uid);
  sd_bus_flush_close_unref(bus);
  if (r < 0) {
    const std::string why = error.text(r);
    if (absl::StrContains(why, "NoSuchUser")) {
      return absl::NotFoundError(absl::StrCat("terminate sessions of uid ", uid, ": none"));
    }
    return absl::UnavailableError(absl::StrCat("terminate sessions of uid ", uid, ": ", why));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> LogindLogins::UidOf(const std::string& account) {
  passwd pw;
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  const int rc = getpwnam_r(account.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return absl::ErrnoToStatus(rc, absl::StrCat("look up account ", account));
  if (found == nullptr) return absl::NotFoundError(absl::StrCat("no account ", account));
  return static_cast<uint32_t>(pw.pw_uid);
}

}  // namespace nodeward::platform
