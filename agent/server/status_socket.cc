#include "agent/server/status_socket.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/common/logging.h"

namespace nodeward {

StatusSocketServer::StatusSocketServer(std::function<std::string()> render)
    : render_(std::move(render)) {}

StatusSocketServer::~StatusSocketServer() { Stop(); }

absl::Status StatusSocketServer::Start(const StatusSocketOptions& options) {
  options_ = options;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options.path.empty() || options.path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("status socket path '", options.path, "' is empty or too long"));
  }
  std::memcpy(addr.sun_path, options.path.c_str(), options.path.size() + 1);
  if (options.inherited_fd >= 0) {
    // systemd made it with the unit's SocketUser/SocketGroup/SocketMode.
    listen_fd_ = options.inherited_fd;
    int flags = fcntl(listen_fd_, F_GETFL);
    if (flags < 0 || fcntl(listen_fd_, F_SETFL, flags | O_NONBLOCK) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("use inherited status socket ", options.path));
    }
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    if (stop_fd_ < 0) return absl::ErrnoToStatus(errno, "create status socket stop event");
    thread_ = std::thread([this] { Serve(); });
    return absl::OkStatus();
  }
  // The directory is normally systemd's RuntimeDirectory (0750); create it
  // the same way when the agent runs outside systemd.
  const std::string dir = options.path.substr(0, options.path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("create status socket directory ", dir));
  }
  struct stat st;
  if (lstat(options.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("status socket path ", options.path, " exists and is not a socket"));
    }
    unlink(options.path.c_str());  // stale socket from an earlier run
  }
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) return absl::ErrnoToStatus(errno, "create status socket");
  // Created 0600 through the umask, then opened up to 0660: never wider.
  mode_t old = umask(0177);
  int rc = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  umask(old);
  if (rc != 0) return absl::ErrnoToStatus(err, absl::StrCat("bind status socket ", options.path));
  if (options.socket_gid != 0 && chown(options.path.c_str(), static_cast<uid_t>(-1),
                                       options.socket_gid) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("chown status socket ", options.path));
  }
  if (chmod(options.path.c_str(), 0660) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("chmod status socket ", options.path));
  }
  // Room for a burst of readers (and silent peers) while one is served.
  if (listen(listen_fd_, kBacklog) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("listen on status socket ", options.path));
  }
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) return absl::ErrnoToStatus(errno, "create status socket stop event");
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void StatusSocketServer::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    if (options_.inherited_fd < 0) unlink(options_.path.c_str());
    listen_fd_ = -1;
  }
  if (stop_fd_ >= 0) {
    close(stop_fd_);
    stop_fd_ = -1;
  }
}

bool StatusSocketServer::PeerAllowed(int fd, std::string* who) const {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  *who = absl::StrCat("pid ", cred.pid, " uid ", cred.uid, " gid ", cred.gid);
  if (cred.uid == 0 || options_.allowed_uids.count(cred.uid) != 0 ||
      options_.allowed_gids.count(cred.gid) != 0) {
    return true;
  }
  // SO_PEERCRED has the primary group only; the supplementary ones, as the
  // kernel recorded them at connect(2), come from SO_PEERGROUPS.
  std::vector<gid_t> groups(64);
  socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) != 0 && errno == ERANGE) {
    groups.resize(glen / sizeof(gid_t) + 1);
    glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) != 0) return false;
  } else if (glen > groups.size() * sizeof(gid_t)) {
    return false;
  }
  groups.resize(glen / sizeof(gid_t));
  for (gid_t g : groups) {
    if (options_.allowed_gids.count(g) != 0) {
      absl::StrAppend(who, " (supplementary group ", g, ")");
      return true;
    }
  }
  return false;
}

void StatusSocketServer::Serve() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // A peer that does not read gets at most kPeerDeadline in all, then is
    // closed: one slow reader cannot hold the others in the backlog.
    const auto deadline = std::chrono::steady_clock::now() + kPeerDeadline;
    timeval tv{0, 200 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string who;
    std::string body;
    if (PeerAllowed(fd, &who)) {
      body = render_();
    } else {
      NW_LOG_WARNING("status socket: refused ", who);
      body = "{\"error\":\"PERMISSION_DENIED: this uid/gid may not read agent status\"}";
    }
    body.push_back('\n');
    absl::string_view rest = body;
    while (!rest.empty()) {
      if (std::chrono::steady_clock::now() > deadline) break;
      ssize_t w = send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (w <= 0) break;
      rest.remove_prefix(static_cast<size_t>(w));
    }
    close(fd);
  }
}

}  // namespace nodeward
