#ifndef NODEWARD_AGENT_ACCESS_SSH_KEY_H_
#define NODEWARD_AGENT_ACCESS_SSH_KEY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace nodeward::access {

struct SshPublicKey {
  std::string type;    // "ssh-ed25519", ...
  std::string base64;  // as given, re-encoded canonically
  std::string blob;    // decoded
  // As sshd logs it: "SHA256:" + unpadded base64 of SHA-256(blob).
  std::string fingerprint;
};

// One OpenSSH public key line, "<type> <base64> [comment]", with no
// options. The blob must decode and name the same type; RSA keys need at
// least 3072 bits. INVALID_ARGUMENT otherwise.
absl::StatusOr<SshPublicKey> ParseSshPublicKey(absl::string_view line);

// The authorized_keys line for a window: expiry-time (UTC, "Z"), from=,
// restrict with pty (no forwarding, agent or X11), the key, and a comment
// naming the operator and ticket (only [A-Za-z0-9._:/-] kept).
std::string AuthorizedKeyLine(const SshPublicKey& key, const std::vector<std::string>& from,
                              absl::Time not_after, const std::string& operator_name,
                              const std::string& ticket);

}  // namespace nodeward::access

#endif  // NODEWARD_AGENT_ACCESS_SSH_KEY_H_
