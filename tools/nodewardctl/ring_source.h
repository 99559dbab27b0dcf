#ifndef NODEWARD_TOOLS_NODEWARDCTL_RING_SOURCE_H_
#define NODEWARD_TOOLS_NODEWARDCTL_RING_SOURCE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/backup/backup_format.h"

namespace nodeward {

// Backup input (security rule 2: authenticate and use the same bytes). A
// reader thread read(2)s the input into a ring of private memory, and the
// cipher gets views into that ring: each byte is copied out of the file
// once, by the reader thread, and the MAC and the decryption see that same
// private copy, which no other process can change (the input file may be
// rewritten underneath: the agent's copy is not). A file that shrinks is a
// short read, never SIGBUS. The ring is one memfd mapped twice back to back,
// so a view that crosses its end is still contiguous; its fd is closed once
// mapped. The cipher's thread does no kernel work and wakes nobody: both
// sides poll with a short backoff.
class RingSource final : public backup::ByteSource {
 public:
  // `usual_view`: the view size asked for most (a default v2 chunk and its
  // tag); larger ones work too, through a scratch copy.
  static absl::StatusOr<std::unique_ptr<RingSource>> Start(int fd, size_t usual_view);
  ~RingSource() override;

  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;
  bool CanView() const override { return true; }
  absl::StatusOr<absl::string_view> ReadView(size_t size) override;

 private:
  RingSource(int fd, char* base, size_t ring);
  void Fill();
  // Waits until `n` bytes past the consumer's position are in the ring, or
  // the input ended; returns how many are there (<= n).
  absl::StatusOr<size_t> Await(size_t n);

  const int fd_;
  char* const base_;
  const size_t ring_;
  std::atomic<uint64_t> written_{0};   // bytes the reader has put in the ring
  std::atomic<uint64_t> consumed_{0};  // bytes the consumer is done with
  std::atomic<bool> done_{false};      // the reader reached the end or an error
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  uint64_t pos_ = 0;   // consumer's position (consumer thread only)
  size_t held_ = 0;    // length of the view handed out last
  std::string scratch_;  // views larger than half the ring
  std::thread reader_;
};

}  // namespace nodeward

#endif  // NODEWARD_TOOLS_NODEWARDCTL_RING_SOURCE_H_
