#include "agent/server/node_agent_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "agent/command/envelope_scan.h"
#include "agent/common/reason.h"
#include "grpcpp/alarm.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "agent/server/audit_watcher.h"
#include "agent/server/grpc_status.h"

namespace nodeward {
namespace {

using nodeward::v1::HealthReport;

// One WatchHealth stream: writes a report now, then after every change,
// never more than one write in flight and, with a minimum interval, never
// two reports closer than it: changes inside the interval are coalesced into
// one report sent when it has passed (a grpc::Alarm). Deleted when both
// gRPC (OnDone) and a pending alarm have let go of it.
class HealthWatcher final : public grpc::ServerWriteReactor<HealthReport> {
 public:
  HealthWatcher(HealthPublisher* publisher, std::function<HealthReport()> build,
                uint32_t max_reports, absl::Duration min_interval)
      : publisher_(publisher),
        build_(std::move(build)),
        max_reports_(max_reports),
        min_interval_(min_interval) {
    publisher_->StreamOpened();
    {
      absl::MutexLock lock(&mu_);
      WriteLocked();
    }
    id_ = publisher_->Subscribe([this](bool closing) { OnChange(closing); });
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status::OK);
    if (max_reports_ != 0 && sent_ >= max_reports_) return FinishLocked(grpc::Status::OK);
    if (closing_) return FinishLocked(grpc::Status::OK);
    if (dirty_) MaybeWriteLocked();
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
    closing_ = true;
  }
  void OnDone() override {
    publisher_->Unsubscribe(id_);
    publisher_->StreamClosed();
    bool cancel = false;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      cancel = alarm_pending_;
    }
    if (cancel) alarm_.Cancel();  // its callback drops the alarm's reference
    Unref();
  }

 private:
  void OnChange(bool closing) {
    absl::MutexLock lock(&mu_);
    if (closing) {
      closing_ = true;
      if (!writing_) FinishLocked(grpc::Status::OK);
      return;
    }
    dirty_ = true;
    if (!writing_ && !finished_) MaybeWriteLocked();
  }
  // Writes now, or arms the alarm for when the interval has passed.
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time due = last_write_ + min_interval_;
    const absl::Time now = absl::Now();
    if (min_interval_ <= absl::ZeroDuration() || now >= due) return WriteLocked();
    if (alarm_pending_ || done_) return;  // the pending alarm writes the burst
    alarm_pending_ = true;
    refs_.fetch_add(1);
    alarm_.Set(absl::ToChronoTime(due), [this](bool fired) { OnAlarm(fired); });
  }
  void OnAlarm(bool fired) {
    {
      absl::MutexLock lock(&mu_);
      alarm_pending_ = false;
      if (fired && !done_ && dirty_ && !writing_ && !finished_) WriteLocked();
    }
    Unref();
  }
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    report_ = build_();
    report_.set_report_number(++sent_);
    dirty_ = false;
    writing_ = true;
    last_write_ = absl::Now();
    StartWrite(&report_);
  }
  void FinishLocked(const grpc::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  HealthPublisher* const publisher_;
  const std::function<HealthReport()> build_;
  const uint32_t max_reports_;
  const absl::Duration min_interval_;
  int id_ = -1;
  // gRPC's reference (dropped in OnDone) and a pending alarm's.
  std::atomic<int> refs_{1};
  grpc::Alarm alarm_;
  absl::Mutex mu_;
  HealthReport report_ ABSL_GUARDED_BY(mu_);
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
};

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

}  // namespace

NodeAgentService::NodeAgentService(CommandProcessor* processor, CommandExecutor* executor,
                                   HealthPublisher* publisher,
                                   std::function<HealthReport()> build_report,
                                   std::vector<std::string> allowed_client_sans,
                                   VerifierLimits limits, size_t max_queued_bytes)
    : processor_(processor),
      executor_(executor),
      publisher_(publisher),
      build_report_(std::move(build_report)),
      allowed_client_sans_(std::move(allowed_client_sans)),
      limits_(limits),
      max_queued_bytes_(max_queued_bytes) {}

absl::StatusOr<std::string> NodeAgentService::CheckPeer(grpc::CallbackServerContext* context,
                                                        const char* rpc) const {
  auto auth = context->auth_context();
  std::vector<std::string> sans;
  if (auth) {
    for (const auto& v : auth->FindPropertyValues("x509_subject_alternative_name")) {
      sans.emplace_back(v.data(), v.size());
    }
  }
  std::string name = absl::StrCat(context->peer(), sans.empty() ? "" : " ",
                                  absl::StrJoin(sans, ","));
  if (allowed_client_sans_.empty()) return name;
  for (const auto& s : sans) {
    if (std::find(allowed_client_sans_.begin(), allowed_client_sans_.end(), s) !=
        allowed_client_sans_.end()) {
      return name;
    }
  }
  absl::Status refusal = Reject(absl::StatusCode::kPermissionDenied, reason::kPeerNotAllowed,
                                "client certificate names no allowed orchestrator identity");
  processor_->RecordEarlyRefusal(name, rpc, refusal, RejectionFacts{});
  return refusal;
}

grpc::ServerUnaryReactor* NodeAgentService::Execute(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  auto* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> peer = CheckPeer(context, "Execute");
  if (!peer.ok()) {
    reactor->Finish(ToGrpcStatus(peer.status(), context));
    return reactor;
  }
  // The cheap checks on gRPC's own buffer, before any copy or parse: sizes,
  // counts and lengths from the wire, the size cap of the claimed type.
  const size_t size = request->Length();
  {
    grpc::ByteBuffer shared(*request);  // shares the slices, copies nothing
    grpc::ProtoBufferReader reader(&shared);
    absl::StatusOr<EnvelopeShape> shape = ScanEnvelope(&reader, size, limits_);
    if (!shape.ok()) {
      RejectionFacts facts;
      processor_->RecordEarlyRefusal(*peer, "Execute", shape.status(), facts);
      reactor->Finish(ToGrpcStatus(shape.status(), context));
      return reactor;
    }
  }
  // Bytes held for verification are bounded in total: the copy below and
  // the signed message (PAE) the verifier builds from it.
  const size_t cost = 2 * size;
  if (queued_bytes_.fetch_add(cost) + cost > max_queued_bytes_) {
    queued_bytes_.fetch_sub(cost);
    absl::Status busy = Reject(absl::StatusCode::kResourceExhausted, reason::kAgentBusy,
                               absl::StrCat("too many command bytes queued (cap ",
                                            max_queued_bytes_, "); retry later"));
    processor_->RecordEarlyRefusal(*peer, "Execute", busy, RejectionFacts{});
    reactor->Finish(ToGrpcStatus(busy, context));
    return reactor;
  }
  // Never block a gRPC callback thread: the pipeline (fsync included) runs
  // on the command executor, which finishes the reactor.
  std::string chain;
  if (auto auth = context->auth_context()) {
    // The leaf, then the chain as the client sent it (gRPC's TLS properties).
    for (const char* property : {"x509_pem_cert", "x509_pem_cert_chain"}) {
      for (const auto& v : auth->FindPropertyValues(property)) chain.append(v.data(), v.size());
    }
  }
  bool posted = executor_->Post([this, context, reactor, response, bytes = Flatten(*request),
                                 peer = *peer, chain = std::move(chain), cost] {
    absl::StatusOr<nodeward::v1::CommandResult> result = processor_->Execute(bytes, peer, chain);
    queued_bytes_.fetch_sub(cost);
    if (!result.ok()) {
      reactor->Finish(ToGrpcStatus(result.status(), context));
      return;
    }
    std::string out = result->SerializeAsString();
    grpc::Slice slice(out);
    *response = grpc::ByteBuffer(&slice, 1);
    reactor->Finish(grpc::Status::OK);
  });
  if (!posted) {
    queued_bytes_.fetch_sub(cost);
    reactor->Finish(ToGrpcStatus(Reject(absl::StatusCode::kResourceExhausted, reason::kAgentBusy,
                                        "too many commands queued; retry later"),
                                 context));
  }
  return reactor;
}

namespace {
// A stream refused before its first message.
template <typename T>
class RefusedStream final : public grpc::ServerWriteReactor<T> {
 public:
  explicit RefusedStream(grpc::Status s) { this->Finish(s); }
  void OnDone() override { delete this; }
};
}  // namespace

grpc::ServerWriteReactor<HealthReport>* NodeAgentService::WatchHealth(
    grpc::CallbackServerContext* context, const nodeward::v1::WatchHealthRequest* request) {
  absl::StatusOr<std::string> peer = CheckPeer(context, "WatchHealth");
  if (!peer.ok()) return new RefusedStream<HealthReport>(ToGrpcStatus(peer.status(), context));
  return new HealthWatcher(publisher_, build_report_, request->max_reports(),
                           absl::Milliseconds(request->min_interval_ms()));
}

grpc::ServerWriteReactor<nodeward::v1::AuditBatch>* NodeAgentService::WatchAudit(
    grpc::CallbackServerContext* context, const nodeward::v1::WatchAuditRequest* request) {
  absl::StatusOr<std::string> peer = CheckPeer(context, "WatchAudit");
  if (!peer.ok()) {
    return new RefusedStream<nodeward::v1::AuditBatch>(ToGrpcStatus(peer.status(), context));
  }
  if (audit_ == nullptr) {
    return new RefusedStream<nodeward::v1::AuditBatch>(ToGrpcStatus(
        Reject(absl::StatusCode::kUnavailable, reason::kAuditUnavailable,
               "the audit chain could not be opened; nothing to stream"),
        context));
  }
  // Each stream may read the file while catching up: a bounded number.
  if (audit_feed_->streams() >= kMaxAuditStreams) {
    return new RefusedStream<nodeward::v1::AuditBatch>(ToGrpcStatus(
        Reject(absl::StatusCode::kResourceExhausted, reason::kAgentBusy,
               absl::StrCat("already ", kMaxAuditStreams, " WatchAudit streams open; retry later")),
        context));
  }
  return NewAuditWatcher(audit_, audit_feed_, *request);
}

}  // namespace nodeward
