#include "platform/linux/listener_probe_linux.h"

#include <openssl/sha.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace nodeward::platform {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// Set by the message callback when any handshake message from the server
// has been read (ServerHello first).
void OnMessage(int write_p, int, int content_type, const void*, size_t, SSL*, void* arg) {
  if (write_p == 0 && content_type == SSL3_RT_HANDSHAKE) *static_cast<bool*>(arg) = true;
}

absl::Status Split(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), port)) {
    return absl::InvalidArgumentError(absl::StrCat("probe listener: bad address ", address));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  if (host->empty() || *host == "0.0.0.0") *host = "127.0.0.1";
  if (*host == "::") *host = "::1";
  return absl::OkStatus();
}

}  // namespace

absl::Status LinuxListenerProbe::Probe(const std::string& address, absl::Duration timeout) {
  return Handshake(address, timeout, nullptr);
}

absl::StatusOr<std::string> LinuxListenerProbe::ServedSpki(const std::string& address,
                                                           absl::Duration timeout) {
  std::string spki;
  if (absl::Status s = Handshake(address, timeout, &spki); !s.ok()) return s;
  return spki;
}

absl::Status LinuxListenerProbe::Handshake(const std::string& address, absl::Duration timeout,
                                           std::string* spki) {
  std::string host;
  int port = 0;
  if (absl::Status s = Split(address, &host, &port); !s.ok()) return s;
  sockaddr_storage sa{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&sa);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&sa);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v6);
  } else {
    v4->sin_family = AF_INET;  // a host name: the agent listens on it locally
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v4);
  }
  Fd sock;
  sock.fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (sock.fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("probe listener ", address, ": socket"));
  }
  const absl::Time deadline = absl::Now() + timeout;
  auto wait = [&](short events) -> absl::Status {
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) return absl::DeadlineExceededError("timed out");
    pollfd p{sock.fd, events, 0};
    int n = poll(&p, 1, ms);
    if (n < 0) return absl::ErrnoToStatus(errno, "poll");
    if (n == 0) return absl::DeadlineExceededError("timed out");
    return absl::OkStatus();
  };
  if (connect(sock.fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
    if (errno != EINPROGRESS) {
      return absl::UnavailableError(
          absl::StrCat("probe listener ", address, ": connect: ", strerror(errno)));
    }
    if (absl::Status s = wait(POLLOUT); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("probe listener ", address, ": connect ",
                                                 s.message()));
    }
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
      return absl::UnavailableError(
          absl::StrCat("probe listener ", address, ": connect: ", strerror(err)));
    }
  }
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(ctx ? SSL_new(ctx.get()) : nullptr, SSL_free);
  if (!ssl) return absl::InternalError("probe listener: OpenSSL context");
  bool answered = false;
  SSL_set_msg_callback(ssl.get(), OnMessage);
  SSL_set_msg_callback_arg(ssl.get(), &answered);
  SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);  // liveness only
  SSL_set_fd(ssl.get(), sock.fd);
  // For the SPKI the handshake goes on until the server's certificate is
  // in (TLS 1.3 sends it encrypted after the ServerHello).
  auto done = [&] {
    return spki == nullptr ? answered : SSL_get0_peer_certificate(ssl.get()) != nullptr;
  };
  while (!done()) {
    int r = SSL_connect(ssl.get());
    if (r == 1 || done()) break;
    const int e = SSL_get_error(ssl.get(), r);
    absl::Status s;
    if (e == SSL_ERROR_WANT_READ) {
      s = wait(POLLIN);
    } else if (e == SSL_ERROR_WANT_WRITE) {
      s = wait(POLLOUT);
    } else {
      ERR_clear_error();
      if (done()) break;
      return absl::UnavailableError(
          absl::StrCat("probe listener ", address, ": the server closed the handshake unanswered"));
    }
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("probe listener ", address,
                                                 ": no ServerHello: ", s.message()));
    }
  }
  ERR_clear_error();
  if (spki != nullptr) {
    X509* leaf = SSL_get0_peer_certificate(ssl.get());
    if (leaf == nullptr) {
      return absl::UnavailableError(absl::StrCat("probe listener ", address, ": no certificate"));
    }
    unsigned char* der = nullptr;
    const int n = i2d_PUBKEY(X509_get0_pubkey(leaf), &der);
    if (n <= 0) return absl::InternalError("probe listener: encode the served key");
    unsigned char md[32];
    SHA256(der, static_cast<size_t>(n), md);
    OPENSSL_free(der);
    static constexpr char kHex[] = "0123456789abcdef";
    spki->clear();
    for (unsigned char c : md) {
      spki->push_back(kHex[c >> 4]);
      spki->push_back(kHex[c & 15]);
    }
  }
  return absl::OkStatus();
}

}  // namespace nodeward::platform
