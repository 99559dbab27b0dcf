#include "platform/linux/systemd_mounts.h"

#include <sys/stat.h>
#include <systemd/sd-bus.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/common/status_macros.h"
#include "platform/linux/beneath.h"
#include "platform/linux/systemd_bus.h"

namespace nodeward::platform {
namespace {

constexpr const char* kService = kSystemdService;
constexpr const char* kManagerPath = kSystemdManagerPath;
constexpr const char* kManager = kSystemdManager;
constexpr const char* kUnit = kSystemdUnit;
// A mount after mkfs is quick; a TCG VM or a loaded host is slow.
constexpr auto kJobDeadline = std::chrono::seconds(120);
using Message = BusMessage;

std::string UnitPath(const std::string& unit) { return SystemdUnitPath(unit); }

std::string Parent(const std::string& p) {
  const size_t slash = p.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : p.substr(0, slash);
}

bool UnderOrAt(const std::string& path, const std::string& root) {
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

}  // namespace

std::string MountUnitName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t start = 0;
  while (start < p.size() && p[start] == '/') ++start;
  p = p.substr(start);
  if (p.empty()) return "-.mount";
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (c == '/') {
      out.push_back('-');
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == ':' || c == '_' || (c == '.' && i != 0)) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    }
  }
  return out + ".mount";
}

SystemdFilesystems::SystemdFilesystems(std::vector<std::string> allowed_roots)
    : roots_(allowed_roots), inner_(std::move(allowed_roots)) {}

SystemdFilesystems::~SystemdFilesystems() { sd_bus_flush_close_unref(bus_); }

absl::StatusOr<sd_bus*> SystemdFilesystems::Bus() {
  if (bus_ != nullptr) return bus_;
  ASSIGN_OR_RETURN(bus_, OpenSystemdBus());
  return bus_;
}

absl::StatusOr<std::string> SystemdFilesystems::WaitFor(const std::string& unit,
                                                        const std::vector<std::string>& done) {
  ASSIGN_OR_RETURN(sd_bus * bus, Bus());
  const std::string path = UnitPath(unit);
  const auto deadline = std::chrono::steady_clock::now() + kJobDeadline;
  auto pause = std::chrono::milliseconds(10);
  while (true) {
    BusError err;
    char* state = nullptr;
    int r = sd_bus_get_property_string(bus, kService, path.c_str(), kUnit, "ActiveState", &err.e,
                                       &state);
    std::string s = r >= 0 && state != nullptr ? state : "";
    free(state);
    if (r < 0 && !sd_bus_error_has_name(&err.e, SD_BUS_ERROR_UNKNOWN_OBJECT)) {
      return absl::UnavailableError(absl::StrCat("read ", unit, " state: ", err.text(r)));
    }
    if (r < 0) s = "inactive";  // garbage-collected: a stopped transient unit
    if (s == "failed") return s;
    for (const std::string& d : done) {
      if (s == d) return s;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(unit, " still ", s, " after ", kJobDeadline.count(), " s"));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

absl::Status SystemdFilesystems::MakeDirectories(const std::string& path) {
  // The deepest part of `path` that exists must pass the same walk as a
  // direct mount would (below an allowed root, no links, root-owned,
  // writable by nobody else); systemd creates the rest root-owned, 0755.
  std::string p = path;
  while (true) {
    bool is_root = false;
    for (const std::string& r : roots_) is_root = is_root || p == r;
    if (is_root) break;
    absl::StatusOr<ResolvedDir> at = ResolveBeneath(roots_, p, Walk::kExisting);
    if (at.ok()) {
      struct stat st {};
      if (fstat(at->dir.get(), &st) != 0) return absl::ErrnoToStatus(errno, "stat " + p);
      if (st.st_uid != 0 || (st.st_mode & 022) != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "mount point ", path, ": ", p, " is not root-owned or is writable by others"));
      }
      return absl::OkStatus();
    }
    if (!absl::IsNotFound(at.status())) return at.status();
    bool below = false;
    for (const std::string& r : roots_) below = below || UnderOrAt(Parent(p), r);
    if (!below) return at.status();  // outside the roots: the walk's own error
    p = Parent(p);
  }
  // Nothing below the root exists yet: the root itself.
  struct stat st {};
  if (lstat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();  // systemd makes it
    return absl::ErrnoToStatus(errno, "stat mount root " + p);
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "mount root ", p, " is not a root-owned directory writable by root alone"));
  }
  return absl::OkStatus();
}

absl::Status SystemdFilesystems::Mount(const std::string& device, const std::string& target,
                                       FsType type, const std::string& options) {
  const std::string what = absl::StrCat("mount ", device, " on ", target, " through systemd");
  // What exists is checked as for a direct mount.
  absl::StatusOr<ResolvedDir> at = ResolveBeneath(roots_, target, Walk::kMountOn);
  if (!at.ok() && !absl::IsNotFound(at.status())) return at.status();
  if (!at.ok()) RETURN_IF_ERROR(MakeDirectories(target));
  ASSIGN_OR_RETURN(sd_bus * bus, Bus());
  const std::string unit = MountUnitName(target);
  {
    BusError ignored;  // a failed unit of an earlier attempt would block the name
    sd_bus_call_method(bus, kService, kManagerPath, kManager, "ResetFailedUnit", &ignored.e,
                       nullptr, "s", unit.c_str());
  }
  Message m;
  int r = sd_bus_message_new_method_call(bus, &m.m, kService, kManagerPath, kManager,
                                         "StartTransientUnit");
  if (r >= 0) r = sd_bus_message_append(m.m, "ss", unit.c_str(), "fail");
  if (r >= 0) r = sd_bus_message_open_container(m.m, 'a', "(sv)");
  const std::string description = absl::StrCat("nodeward encrypted volume ", device);
  if (r >= 0) r = sd_bus_message_append(m.m, "(sv)", "Description", "s", description.c_str());
  if (r >= 0) r = sd_bus_message_append(m.m, "(sv)", "What", "s", device.c_str());
  if (r >= 0) r = sd_bus_message_append(m.m, "(sv)", "Where", "s", target.c_str());
  if (r >= 0) {
    r = sd_bus_message_append(m.m, "(sv)", "Type", "s", type == FsType::kXfs ? "xfs" : "ext4");
  }
  if (r >= 0 && !options.empty()) {
    r = sd_bus_message_append(m.m, "(sv)", "Options", "s", options.c_str());
  }
  if (r >= 0) r = sd_bus_message_append(m.m, "(sv)", "LazyUnmount", "b", 1);
  if (r >= 0) r = sd_bus_message_append(m.m, "(sv)", "DirectoryMode", "u", 0755u);
  if (r >= 0) r = sd_bus_message_close_container(m.m);
  if (r >= 0) r = sd_bus_message_append(m.m, "a(sa(sv))", 0);
  if (r < 0) return absl::InternalError(absl::StrCat(what, ": build request: ", strerror(-r)));
  BusError err;
  Message reply;
  r = sd_bus_call(bus, m.m, 0, &err.e, &reply.m);
  if (r < 0) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": start ", unit, ": ", err.text(r)));
  }
  ASSIGN_OR_RETURN(std::string state, WaitFor(unit, {"active"}));
  if (state != "active") {
    BusError e2;
    char* result = nullptr;
    sd_bus_get_property_string(bus, kService, UnitPath(unit).c_str(),
                               "org.freedesktop.systemd1.Mount", "Result", &e2.e, &result);
    const std::string res = result != nullptr ? result : "unknown";
    free(result);
    BusError e3;
    sd_bus_call_method(bus, kService, kManagerPath, kManager, "ResetFailedUnit", &e3.e, nullptr,
                       "s", unit.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", unit, " failed (", res, "; journalctl -u ", unit, ")"));
  }
  return absl::OkStatus();
}

absl::Status SystemdFilesystems::Unmount(const std::string& target, bool lazy) {
  ASSIGN_OR_RETURN(std::optional<uint64_t> mounted, inner_.MountedAt(target));
  if (!mounted.has_value()) return absl::OkStatus();
  ASSIGN_OR_RETURN(sd_bus * bus, Bus());
  const std::string unit = MountUnitName(target);
  BusError err;
  Message reply;
  // systemd has a unit for every mount it sees (ours are transient ones).
  int r = sd_bus_call_method(bus, kService, kManagerPath, kManager, "StopUnit", &err.e, &reply.m,
                             "ss", unit.c_str(), "replace");
  if (r < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(lazy ? "detach " : "unmount ", target, ": stop ", unit, ": ", err.text(r)));
  }
  ASSIGN_OR_RETURN(std::string state, WaitFor(unit, {"inactive"}));
  if (state == "failed") {
    BusError e2;
    sd_bus_call_method(bus, kService, kManagerPath, kManager, "ResetFailedUnit", &e2.e, nullptr,
                       "s", unit.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat(lazy ? "detach " : "unmount ", target, ": ", unit, " failed to stop"));
  }
  return absl::OkStatus();
}

}  // namespace nodeward::platform
