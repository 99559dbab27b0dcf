#ifndef NODEWARD_AGENT_CERT_CERT_MANAGER_H_
#define NODEWARD_AGENT_CERT_CERT_MANAGER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/command/command_handler.h"
#include "nodeward/v1/agent.pb.h"
#include "nodeward/v1/config.pb.h"
#include "platform/clock.h"
#include "platform/file_system.h"
#include "platform/service_control.h"

namespace nodeward::cert {

struct CertDeps {
  platform::FileSystem* fs;
  platform::Clock* clock;
  // Runs the targets' reload actions; null: a target with one is refused.
  platform::ServiceControl* services = nullptr;
  // The SPKI hash (hex) the agent's own listener presents to a new
  // handshake now; for AGENT_IDENTITY targets.
  std::function<absl::StatusOr<std::string>()> served_spki;
  // How the identity check waits between handshakes (null: absl::SleepFor;
  // tests advance their clock instead). Its deadline is on `clock`.
  std::function<void(absl::Duration)> sleep;
};

struct CertOptions {
  std::vector<nodeward::v1::CertificateTarget> targets;
  absl::Duration clock_skew = absl::Seconds(300);
  // Pending keys: <state_dir>/certs/<target>.pending.key (0600).
  std::string state_dir;
  std::string node_id;  // the CSR's default common name; renewal jitter
  // tls.client_ca_file, when UpdateCaBundle{client_ca} may rotate it
  // (certificates.manage_client_ca); "" when it may not.
  std::string client_ca_file;
};

// The health entry (and UpdateCaBundle's target name in results) for the
// client CA bundle.
inline constexpr char kClientCaTarget[] = "client-ca";

// RequestCertificate and InstallCertificate for the configured targets
// (docs/certificates.md). Keys are made here and never leave the VM; a
// chain is validated completely before anything is written, then installed
// as a new version directory, fsynced, and made current by one rename(2) of
// a symlink: a reader (or a restart after SIGKILL at any step) sees the old
// complete version or the new complete one. Thread-safe.
class CertificateManager final : public CommandHandler {
 public:
  // INVALID_ARGUMENT for a bad target list (names, directories, SANs).
  static absl::StatusOr<std::unique_ptr<CertificateManager>> Create(CertDeps deps,
                                                                    CertOptions options);

  absl::StatusOr<nodeward::v1::CommandResult> Apply(const VerifiedCommand& command) override;

  // Every target as read back from its files now.
  std::vector<nodeward::v1::CertificateHealth> Status();

  // When a certificate valid over [not_before, not_after] is due for
  // renewal: 2/3 of its lifetime, minus a per-node and per-target jitter of
  // up to 5% of the lifetime (a fleet does not renew in one second).
  static absl::Time RenewalDue(absl::Time not_before, absl::Time not_after,
                               const std::string& node_id, const std::string& target);

 private:
  CertificateManager(CertDeps deps, CertOptions options);
  const nodeward::v1::CertificateTarget* Find(const std::string& name) const;
  // Find, or CERT_TARGET_UNKNOWN.
  absl::StatusOr<const nodeward::v1::CertificateTarget*> Target(const std::string& name) const;
  std::string PendingPath(const std::string& target) const;
  absl::StatusOr<nodeward::v1::CommandResult> Request(const nodeward::v1::RequestCertificate& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<nodeward::v1::CommandResult> Install(const nodeward::v1::InstallCertificate& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<nodeward::v1::CommandResult> UpdateBundle(const nodeward::v1::UpdateCaBundle& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // UpdateCaBundle{client_ca}: `peer_chain_pem` is the client certificate
  // the command came over, which must still verify.
  absl::StatusOr<nodeward::v1::CommandResult> UpdateClientCa(const nodeward::v1::UpdateCaBundle& c,
                                                             const std::string& peer_chain_pem)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  nodeward::v1::CertificateHealth ClientCaStatus(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes v<current+1> (durable), swaps `current` to it, runs the reload
  // and rolls back if that fails: the new version, or why not.
  absl::StatusOr<uint32_t> Commit(const nodeward::v1::CertificateTarget& t, uint32_t current,
                                  absl::string_view key_pem, absl::string_view chain_pem,
                                  absl::string_view bundle_pem, const std::string& spki)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The version `current` points at (0: none). CERT_TARGET_FOREIGN when it
  // is not our symlink.
  absl::StatusOr<uint32_t> CurrentVersion(const nodeward::v1::CertificateTarget& t)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CertDeps deps_;
  const CertOptions options_;
  absl::Mutex mu_;
  // The target's reload action; OK when it has none. `spki` is the
  // certificate now current (what the agent's identity must serve).
  absl::Status RunReload(const nodeward::v1::CertificateTarget& t, const std::string& spki);
  // The SPKI of version `v`'s leaf ("" if unreadable).
  std::string SpkiOf(const nodeward::v1::CertificateTarget& t, uint32_t v);

  std::map<std::string, absl::Time> pending_since_ ABSL_GUARDED_BY(mu_);
  // Why the last install's reload failed (cleared by a good install).
  std::map<std::string, std::string> reload_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeward::cert

#endif  // NODEWARD_AGENT_CERT_CERT_MANAGER_H_
