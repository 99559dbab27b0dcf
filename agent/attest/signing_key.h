#ifndef NODEWARD_AGENT_ATTEST_SIGNING_KEY_H_
#define NODEWARD_AGENT_ATTEST_SIGNING_KEY_H_

#include <string>

#include "absl/status/statusor.h"
#include "agent/common/crypto.h"
#include "platform/file_system.h"

namespace nodeward::attest {

// The agent's own signing key (docs/wipe.md "Receipt signature"): Ed25519,
// made on this VM at the first start and kept in `path` (0600, in the state
// dir) across restarts and reboots, so an orchestrator pins its public key
// from health once, before it ever asks for a wipe. It signs only
// DSSE-encoded statements with their own payload types (wipe receipts) and
// never TLS. The PEM text goes from the file into locked memory only, and
// OpenSSL keeps the key in its secure heap.
//
// NOT_FOUND never: a missing file means a first start and a new key.
// DATA_LOSS for a file that exists but does not hold an Ed25519 key (the
// agent never replaces a key an orchestrator may have pinned).
absl::StatusOr<Ed25519PrivateKey> LoadOrCreateSigningKey(platform::FileSystem* fs,
                                                         const std::string& path);

}  // namespace nodeward::attest

#endif  // NODEWARD_AGENT_ATTEST_SIGNING_KEY_H_
