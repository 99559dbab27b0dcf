#include "tests/e2e/tls12_forge.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace nodeward::testing {
namespace {

void Put16(std::string* s, size_t v) {
  s->push_back(static_cast<char>((v >> 8) & 0xff));
  s->push_back(static_cast<char>(v & 0xff));
}
void Put24(std::string* s, size_t v) {
  s->push_back(static_cast<char>((v >> 16) & 0xff));
  Put16(s, v);
}
size_t Get(const std::string& s, size_t at, int n) {
  size_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::string ClientHello(const std::string& random) {
  std::string ext;
  Put16(&ext, 0x000a);  // supported_groups: secp256r1
  Put16(&ext, 4);
  Put16(&ext, 2);
  Put16(&ext, 0x0017);
  Put16(&ext, 0x000b);  // ec_point_formats: uncompressed
  Put16(&ext, 2);
  ext += std::string("\x01\x00", 2);
  Put16(&ext, 0x000d);  // signature_algorithms
  Put16(&ext, 8);
  Put16(&ext, 6);
  Put16(&ext, 0x0403);  // ecdsa_secp256r1_sha256
  Put16(&ext, 0x0804);  // rsa_pss_rsae_sha256
  Put16(&ext, 0x0401);  // rsa_pkcs1_sha256
  std::string body = std::string("\x03\x03", 2) + random;
  body.push_back(0);  // no session id
  Put16(&body, 8);
  Put16(&body, 0xc02b);  // ECDHE-ECDSA-AES128-GCM-SHA256
  Put16(&body, 0xc02c);
  Put16(&body, 0xc02f);  // ECDHE-RSA-AES128-GCM-SHA256
  Put16(&body, 0xc030);
  body += std::string("\x01\x00", 2);  // null compression
  Put16(&body, ext.size());
  body += ext;
  std::string hs("\x01", 1);
  Put24(&hs, body.size());
  hs += body;
  std::string rec("\x16\x03\x01", 3);
  Put16(&rec, hs.size());
  return rec + hs;
}

}  // namespace

absl::StatusOr<Tls12KeyExchange> GetServerKeyExchange(int port, const std::string& client_random) {
  if (client_random.size() != 32) return absl::InvalidArgumentError("client_random: 32 bytes");
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return absl::UnavailableError("connect");
  }
  const std::string hello = ClientHello(client_random);
  if (write(fd, hello.data(), hello.size()) != static_cast<ssize_t>(hello.size())) {
    close(fd);
    return absl::UnavailableError("write ClientHello");
  }
  std::string raw, hs;
  Tls12KeyExchange out;
  out.client_random = client_random;
  bool done = false;
  while (!done) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) break;
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    raw.append(buf, n);
    // Records -> handshake bytes.
    while (raw.size() >= 5 && raw.size() >= 5 + Get(raw, 3, 2)) {
      const size_t len = Get(raw, 3, 2);
      if (raw[0] == 0x15) {
        close(fd);
        return absl::PermissionDeniedError("server sent an alert");
      }
      if (raw[0] == 0x16) hs += raw.substr(5, len);
      raw.erase(0, 5 + len);
    }
    // Handshake messages.
    size_t at = 0;
    while (hs.size() >= at + 4 && hs.size() >= at + 4 + Get(hs, at + 1, 3)) {
      const int type = static_cast<unsigned char>(hs[at]);
      const size_t len = Get(hs, at + 1, 3);
      const std::string m = hs.substr(at + 4, len);
      if (type == 2 && m.size() >= 34) out.server_random = m.substr(2, 32);
      if (type == 12 && m.size() >= 4) {
        const size_t plen = 4 + static_cast<unsigned char>(m[3]);
        if (m.size() < plen + 4) break;
        out.params = m.substr(0, plen);
        out.signature_scheme = static_cast<uint16_t>(Get(m, plen, 2));
        const size_t slen = Get(m, plen + 2, 2);
        out.signature = m.substr(plen + 4, slen);
      }
      if (type == 14) done = true;
      at += 4 + len;
    }
  }
  close(fd);
  if (out.server_random.empty() || out.signature.empty()) {
    return absl::UnavailableError(absl::StrCat("no ServerKeyExchange (", hs.size(), " bytes)"));
  }
  return out;
}

}  // namespace nodeward::testing
