#include "agent/wipe/wipe.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "agent/common/crypto.h"
#include "agent/common/proto_util.h"
#include "agent/common/secure_buffer.h"
#include "agent/common/status_macros.h"
#include "agent/common/time_util.h"

namespace nodeward::wipe {
namespace {

using nodeward::v1::WipeItem;
using nodeward::v1::WipeReceipt;
using nodeward::v1::WipeResult;

// A PEM private key of any kind the agent's TLS accepts fits (RSA-8192 PKCS#8
// is ~6.4 KB).
constexpr size_t kMaxSigningKeyPem = 16 << 10;

struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
struct KeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
struct CertFree { void operator()(X509* c) const { X509_free(c); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); } };

absl::StatusOr<std::unique_ptr<X509, CertFree>> ParseCert(absl::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::unique_ptr<X509, CertFree> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError("wipe receipt: not a PEM certificate");
  return cert;
}

std::string CertSha256Hex(X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  if (n <= 0) return "";
  std::string out = HexEncode(Sha256(absl::string_view(reinterpret_cast<char*>(der), n)));
  OPENSSL_free(der);
  return out;
}

// Digest for the key type: none for Ed25519 (it hashes by itself).
const EVP_MD* DigestFor(EVP_PKEY* key, std::string* algorithm) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_ED25519:
      *algorithm = "ed25519";
      return nullptr;
    case EVP_PKEY_EC:
      *algorithm = "ecdsa-sha256";
      return EVP_sha256();
    case EVP_PKEY_RSA:
      *algorithm = "rsa-pkcs1-sha256";
      return EVP_sha256();
    default:
      *algorithm = "";
      return nullptr;
  }
}

std::string SignedBytes(absl::string_view receipt) {
  std::string m(kReceiptContext);
  m.push_back('\0');
  m.append(receipt.data(), receipt.size());
  return m;
}

}  // namespace

absl::StatusOr<WipeResult> SignReceipt(const WipeReceipt& receipt, absl::string_view key_pem,
                                       absl::string_view cert_pem) {
  ASSIGN_OR_RETURN(auto cert, ParseCert(cert_pem));
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::FailedPreconditionError("sign wipe receipt: cannot read the agent's key");
  if (EVP_PKEY_eq(key.get(), X509_get0_pubkey(cert.get())) != 1) {
    return absl::FailedPreconditionError(
        "sign wipe receipt: the agent's key does not match its certificate");
  }
  WipeResult r;
  std::string algorithm;
  const EVP_MD* md = DigestFor(key.get(), &algorithm);
  if (algorithm.empty()) {
    return absl::FailedPreconditionError("sign wipe receipt: unsupported key type");
  }
  r.set_receipt(receipt.SerializeAsString());
  const std::string msg = SignedBytes(r.receipt());
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(msg.data()),
                     msg.size()) != 1) {
    return absl::InternalError("sign wipe receipt: OpenSSL failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) != 1) {
    return absl::InternalError("sign wipe receipt: OpenSSL failed");
  }
  sig.resize(len);
  r.set_signature(sig);
  r.set_signature_algorithm(algorithm);
  r.set_signer_certificate_sha256(CertSha256Hex(cert.get()));
  return r;
}

absl::StatusOr<WipeReceipt> VerifyReceipt(const WipeResult& result, absl::string_view cert_pem) {
  ASSIGN_OR_RETURN(auto cert, ParseCert(cert_pem));
  if (CertSha256Hex(cert.get()) != result.signer_certificate_sha256()) {
    return absl::InvalidArgumentError(
        "wipe receipt: signed under another certificate (SHA-256 " +
        result.signer_certificate_sha256().substr(0, 64) + ")");
  }
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  std::string algorithm;
  const EVP_MD* md = DigestFor(key, &algorithm);
  if (algorithm.empty() || algorithm != result.signature_algorithm()) {
    return absl::InvalidArgumentError("wipe receipt: signature algorithm does not fit the key");
  }
  const std::string msg = SignedBytes(result.receipt());
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1 ||
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(result.signature().data()),
                       result.signature().size(),
                       reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) != 1) {
    return absl::DataLossError("wipe receipt: the signature does not verify");
  }
  WipeReceipt receipt;
  if (!receipt.ParseFromString(result.receipt())) {
    return absl::DataLossError("wipe receipt: signed bytes are not a receipt");
  }
  return receipt;
}

WipeHandler::WipeHandler(WipeDeps deps, WipeOptions options)
    : deps_(deps), options_(std::move(options)) {}

absl::Status WipeHandler::Persist() {
  return deps_.fs->WriteFileAtomically(options_.state_path, record_.SerializeAsString(), 0600);
}

absl::Status WipeHandler::Restore() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<bool> read = ReadRecordFile(deps_.fs, options_.state_path, &record_, "wipe record");
  if (!read.ok()) {
    return absl::Status(read.status().code(),
                        absl::StrCat(read.status().message(), "; nothing was done"));
  }
  if (!*read) return absl::OkStatus();
  have_record_ = true;
  if (record_.has_result()) {
    wiped_.store(true);
    return absl::OkStatus();
  }
  // Cut short (crash, power loss, a step that failed): the signed command
  // stands, so finish it now.
  record_.mutable_receipt()->set_resumed(true);
  absl::StatusOr<WipeResult> r = RunLocked();
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat("resume the interrupted wipe: ", r.status().message()));
  }
  return absl::OkStatus();
}

WipeHandler::Summary WipeHandler::Describe() {
  if (!mu_.TryLock()) return Summary{"running", true};
  Summary out;
  if (have_record_ && record_.has_result()) {
    out.text = absl::StrCat("complete at ",
                            absl::FormatTime(absl::RFC3339_sec,
                                             FromTimestamp(record_.receipt().completed_at()),
                                             absl::UTCTimeZone()));
  } else if (have_record_) {
    std::vector<std::string> failed;
    for (const WipeItem& i : record_.receipt().items()) {
      if (!i.verified()) failed.push_back(absl::StrCat(i.id(), ": ", i.detail()));
    }
    out.incomplete = true;
    out.text = absl::StrCat("started, not finished (resend Wipe to finish)",
                            failed.empty() ? "" : ": ", absl::StrJoin(failed, "; "));
  }
  mu_.Unlock();
  return out;
}

absl::StatusOr<WipeResult> WipeHandler::RunLocked() {
  WipeReceipt* receipt = record_.mutable_receipt();
  receipt->clear_items();
  std::vector<WipeItem> items;
  if (deps_.volumes != nullptr) {
    for (WipeItem& i : deps_.volumes->WipeAll()) items.push_back(std::move(i));
  }
  if (deps_.backup_keys != nullptr) {
    for (WipeItem& i : deps_.backup_keys->WipeAll()) items.push_back(std::move(i));
  }
  bool complete = true;
  std::vector<std::string> failed;
  for (WipeItem& i : items) {
    complete = complete && i.verified();
    if (!i.verified()) failed.push_back(absl::StrCat(i.id(), ": ", i.detail()));
    *receipt->add_items() = std::move(i);
  }
  if (!complete) {
    absl::Status s = Persist();  // the next attempt (or start) resumes
    return absl::InternalError(absl::StrCat(
        "wipe incomplete (", failed.size(), " of ", receipt->items_size(),
        " items not verified; resend Wipe to finish): ", absl::StrJoin(failed, "; "),
        s.ok() ? "" : absl::StrCat("; recording the progress failed: ", s.message())));
  }
  *receipt->mutable_completed_at() = ToTimestamp(deps_.clock->Now());
  receipt->set_complete(true);
  // The key's PEM text goes from the file straight into locked memory (wiped
  // when `key_pem` goes); OpenSSL decodes it into its secure heap.
  ASSIGN_OR_RETURN(SecureBuffer key_pem, SecureBuffer::Create(kMaxSigningKeyPem));
  ASSIGN_OR_RETURN(size_t key_len,
                   deps_.fs->ReadFileInto(options_.signing_key_file,
                                          reinterpret_cast<char*>(key_pem.data()), key_pem.size()));
  key_pem.Shrink(key_len);
  absl::StatusOr<std::string> cert_pem = deps_.fs->ReadFile(options_.signing_cert_file);
  absl::StatusOr<WipeResult> signed_result =
      cert_pem.ok() ? SignReceipt(*receipt, key_pem.view(), *cert_pem) : cert_pem.status();
  if (!signed_result.ok()) {
    receipt->set_complete(false);
    receipt->clear_completed_at();
    (void)Persist();
    return absl::Status(signed_result.status().code(),
                        absl::StrCat("wipe done and verified, but the receipt could not be signed: ",
                                     signed_result.status().message()));
  }
  *record_.mutable_result() = *signed_result;
  if (absl::Status s = Persist(); !s.ok()) {
    // Everything is erased; a later Wipe re-runs the (idempotent) steps and
    // signs again.
    record_.clear_result();
    return absl::UnavailableError(
        absl::StrCat("wipe done and verified, but recording it failed: ", s.message()));
  }
  wiped_.store(true);
  return *signed_result;
}

absl::StatusOr<nodeward::v1::CommandResult> WipeHandler::Apply(const VerifiedCommand& command) {
  const auto& w = command.command.wipe();
  if (w.reason().size() > 256) {
    return absl::InvalidArgumentError("wipe: reason is longer than 256 bytes");
  }
  absl::MutexLock lock(&mu_);
  nodeward::v1::CommandResult result;
  if (record_.has_result()) {
    *result.mutable_wipe() = record_.result();
    result.mutable_wipe()->set_already_wiped(true);
    return result;
  }
  if (!have_record_) {
    // The intent first: from here on an interrupted wipe is finished at the
    // next start.
    WipeReceipt* r = record_.mutable_receipt();
    r->set_node_id(options_.node_id);
    r->set_boot_id(options_.boot_id);
    r->set_command_id(command.command.command_id());
    r->set_sequence(command.command.sequence());
    r->set_reason(w.reason());
    *r->mutable_started_at() = ToTimestamp(deps_.clock->Now());
    if (absl::Status s = Persist(); !s.ok()) {
      record_.Clear();
      return absl::UnavailableError(
          absl::StrCat("wipe: record the intent: ", s.message(), "; nothing was done"));
    }
    have_record_ = true;
  }
  ASSIGN_OR_RETURN(*result.mutable_wipe(), RunLocked());
  return result;
}

absl::StatusOr<nodeward::v1::CommandResult> RefuseAfterWipe::Apply(const VerifiedCommand& command) {
  if (wipe_->wiped()) {
    return absl::FailedPreconditionError(absl::StrCat(
        command.command_type, ": this node was wiped and takes no new volumes or keys"));
  }
  return inner_->Apply(command);
}

}  // namespace nodeward::wipe
