#include "agent/access/ssh_key.h"

#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/crypto.h"

namespace nodeward::access {
namespace {

constexpr absl::string_view kTypes[] = {
    "ssh-ed25519",         "ecdsa-sha2-nistp256",        "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa"};

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("ssh_public_key: ", why));
}

// The SSH wire "string": uint32 length, then the bytes.
bool ReadString(absl::string_view* in, absl::string_view* out) {
  if (in->size() < 4) return false;
  const uint32_t n = (static_cast<uint8_t>((*in)[0]) << 24) | (static_cast<uint8_t>((*in)[1]) << 16) |
                     (static_cast<uint8_t>((*in)[2]) << 8) | static_cast<uint8_t>((*in)[3]);
  if (in->size() - 4 < n) return false;
  *out = in->substr(4, n);
  in->remove_prefix(4 + n);
  return true;
}

}  // namespace

absl::StatusOr<SshPublicKey> ParseSshPublicKey(absl::string_view line) {
  if (line.size() > 16384) return Bad("longer than 16384 bytes");
  for (char c : line) {
    if (c == '\n' || c == '\r' || c == '\0' || c == '"') {
      return Bad("one line of type, base64 and comment, without quotes or options");
    }
  }
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (parts.size() < 2) return Bad("expected '<type> <base64> [comment]'");
  SshPublicKey k;
  k.type = std::string(parts[0]);
  bool known = false;
  for (absl::string_view t : kTypes) known = known || t == k.type;
  if (!known) return Bad(absl::StrCat("key type '", k.type.substr(0, 64), "' is not allowed"));
  if (!absl::Base64Unescape(parts[1], &k.blob) || k.blob.empty()) return Bad("the key is not base64");
  absl::string_view in = k.blob;
  absl::string_view inner;
  if (!ReadString(&in, &inner) || inner != k.type) {
    return Bad("the key's blob does not name its type");
  }
  if (k.type == "ssh-rsa") {
    absl::string_view e, n;
    if (!ReadString(&in, &e) || !ReadString(&in, &n)) return Bad("truncated RSA key");
    while (!n.empty() && n[0] == '\0') n.remove_prefix(1);
    if (n.size() * 8 < 3072) return Bad("an RSA key needs at least 3072 bits");
  } else {
    absl::string_view rest;
    if (!ReadString(&in, &rest)) return Bad("truncated key");
  }
  absl::Base64Escape(k.blob, &k.base64);
  std::string fp;
  absl::Base64Escape(Sha256(k.blob), &fp);
  while (!fp.empty() && fp.back() == '=') fp.pop_back();
  k.fingerprint = "SHA256:" + fp;
  return k;
}

std::string AuthorizedKeyLine(const SshPublicKey& key, const std::vector<std::string>& from,
                              absl::Time not_after, const std::string& operator_name,
                              const std::string& ticket) {
  std::string comment = absl::StrCat("nodeward:", operator_name, ":", ticket);
  for (char& c : comment) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
    if (!ok) c = '_';
  }
  return absl::StrCat("expiry-time=\"", absl::FormatTime("%Y%m%d%H%M%SZ", not_after, absl::UTCTimeZone()),
                      "\",from=\"", absl::StrJoin(from, ","), "\",restrict,pty ", key.type, " ",
                      key.base64, " ", comment);
}

}  // namespace nodeward::access
