#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/cert/cert_internal.h"
#include "agent/cert/cert_manager.h"
#include "agent/cert/x509.h"
#include "agent/common/reason.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"

// UpdateCaBundle{client_ca}: the bundle orchestrator client certificates
// are checked against (tls.client_ca_file).

namespace nodeward::cert {

using internal::kMaxBundle;
using internal::kMaxChain;
using internal::Refuse;
using nodeward::v1::CertificateHealth;
using nodeward::v1::CertificateTarget;
using nodeward::v1::CommandResult;

absl::StatusOr<CommandResult> CertificateManager::UpdateClientCa(
    const nodeward::v1::UpdateCaBundle& c, const std::string& peer_chain_pem) {
  const std::string name = kClientCaTarget;
  if (options_.client_ca_file.empty()) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCapabilityDisabled, name,
                  "certificates.manage_client_ca is off: tls.client_ca_file is not the agent's "
                  "to rotate");
  }
  if (!c.target().empty()) {
    return Refuse(absl::StatusCode::kInvalidArgument, reason::kCertRequestInvalid, name,
                  "client_ca takes no target");
  }
  absl::StatusOr<std::vector<CertPtr>> roots = ParseCertificates(c.ca_bundle_pem(), kMaxBundle);
  if (!roots.ok()) {
    return Refuse(roots.status().code(), ReasonOf(roots.status()), name,
                  absl::StrCat("CA bundle: ", roots.status().message()));
  }
  // The lock-out check (threat 46 for the agent's own door): the
  // orchestrator this command came through must still get in afterwards.
  absl::StatusOr<std::vector<CertPtr>> peer =
      peer_chain_pem.empty() ? absl::StatusOr<std::vector<CertPtr>>(absl::NotFoundError(
                                   "the connection carried no client certificate"))
                             : ParseCertificates(peer_chain_pem, 2 * kMaxChain);
  const absl::Time now = deps_.clock->Now();
  absl::Status still = peer.ok() ? VerifyChain(*peer, *roots, now,
                                               CertificateTarget::CLIENT)
                                 : peer.status();
  if (!still.ok()) {
    return Refuse(absl::StatusCode::kFailedPrecondition, reason::kCertCaDropsCurrent, name,
                  absl::StrCat("the client certificate this command came over would no longer "
                               "be accepted: ", still.message()));
  }
  // The old bundle is kept beside it; the new one replaces the file in one
  // rename(2) and gRPC's certificate provider takes it at its next refresh.
  const std::string& file = options_.client_ca_file;
  absl::StatusOr<std::string> old = deps_.fs->ReadFile(file);
  if (old.ok()) RETURN_IF_ERROR(deps_.fs->WriteFileAtomically(file + ".previous", *old, 0644));
  RETURN_IF_ERROR(deps_.fs->WriteFileAtomically(file, c.ca_bundle_pem(), 0644));
  CommandResult r;
  auto* out = r.mutable_certificate();
  out->set_target(name);
  const CertificateHealth h = ClientCaStatus(now);
  *out->mutable_not_before() = h.not_before();
  *out->mutable_not_after() = h.not_after();
  return r;
}

CertificateHealth CertificateManager::ClientCaStatus(absl::Time now) {
  CertificateHealth h;
  h.set_target(kClientCaTarget);
  absl::StatusOr<std::string> pem = deps_.fs->ReadFile(options_.client_ca_file);
  absl::StatusOr<std::vector<CertPtr>> cas =
      pem.ok() ? ParseCertificates(*pem, kMaxBundle) : absl::StatusOr<std::vector<CertPtr>>(pem.status());
  if (!cas.ok()) {
    h.set_state(CertificateHealth::INVALID);
    h.set_error(absl::StrCat("read ", options_.client_ca_file, ": ", cas.status().message()));
    return h;
  }
  // The horizon of a bundle is its first CA to expire.
  const CertFacts* first = nullptr;
  std::vector<CertFacts> facts;
  for (const CertPtr& c : *cas) facts.push_back(FactsOf(c.get()));
  for (const CertFacts& f : facts) {
    if (first == nullptr || f.not_after < first->not_after) first = &f;
  }
  *h.mutable_not_before() = ToTimestamp(first->not_before);
  *h.mutable_not_after() = ToTimestamp(first->not_after);
  h.set_spki_sha256(first->spki_sha256);
  h.set_subject(first->subject);
  h.set_issuer(first->issuer);
  const absl::Duration life = first->not_after - first->not_before;
  h.set_state(now >= first->not_after                   ? CertificateHealth::EXPIRED
              : first->not_after - now < life / 10      ? CertificateHealth::EXPIRING
                                                        : CertificateHealth::OK);
  return h;
}

}  // namespace nodeward::cert
