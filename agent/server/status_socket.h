#ifndef NODEWARD_AGENT_SERVER_STATUS_SOCKET_H_
#define NODEWARD_AGENT_SERVER_STATUS_SOCKET_H_

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace nodeward {

struct StatusSocketOptions {
  std::string path;
  // uid 0 is always allowed.
  std::set<uint32_t> allowed_uids;
  std::set<uint32_t> allowed_gids;
  // Group owner of the socket file; 0 leaves it.
  uint32_t socket_gid = 0;
  // A listening socket the service manager already bound at `path`
  // (socket activation): used as is, never chowned, chmodded or unlinked.
  int inherited_fd = -1;
};

// Read-only local status: a filesystem Unix stream socket (never abstract),
// mode 0660. Each connection gets one JSON document and is closed; the
// server reads nothing from clients, so a slow or silent peer cannot hold it
// (writes time out after a second). Peers are checked with SO_PEERCRED.
// One thread; connections are served one at a time.
class StatusSocketServer {
 public:
  explicit StatusSocketServer(std::function<std::string()> render);
  ~StatusSocketServer();

  // Binds and starts the thread. FAILED_PRECONDITION if `path` exists and is
  // not a socket; errno statuses for bind/listen failures.
  absl::Status Start(const StatusSocketOptions& options);
  // Stops the thread and removes the socket file. Idempotent.
  void Stop();

 static constexpr int kBacklog = 512;
  static constexpr std::chrono::milliseconds kPeerDeadline{1000};

 private:
  void Serve();
  bool PeerAllowed(int fd, std::string* who) const;

  std::function<std::string()> render_;
  StatusSocketOptions options_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace nodeward

#endif  // NODEWARD_AGENT_SERVER_STATUS_SOCKET_H_
