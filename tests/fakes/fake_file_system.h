#ifndef NODEWARD_TESTS_FAKES_FAKE_FILE_SYSTEM_H_
#define NODEWARD_TESTS_FAKES_FAKE_FILE_SYSTEM_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "platform/file_system.h"

namespace nodeward::platform {

// In-memory files with a model of durability: each file has its written
// content and the prefix that a sync made durable. Crash() throws away what
// was never synced, as a power cut would. FailNext(code) makes the next
// mutating operation (append, sync, atomic write, open, mkdir) fail.
class FakeFileSystem final : public FileSystem {
 public:
  // platform::FileSystem
  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::StatusOr<size_t> ReadFileInto(const std::string& path, char* out,
                                      size_t capacity) override;
  // Every path read with ReadFile, in order (ReadFileInto is not listed).
  std::vector<std::string> reads();
  absl::Status WriteFileAtomically(const std::string& path, absl::string_view data,
                                   uint32_t mode) override;
  absl::StatusOr<AppendableFilePtr> OpenForAppend(const std::string& path, uint32_t mode) override;
  absl::Status MakeDirectory(const std::string& path, uint32_t mode) override;
  absl::Status RemoveFile(const std::string& path) override;
  absl::StatusOr<std::vector<Entry>> ListTree(const std::string& dir) override;
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override;
  absl::Status OverwriteInPlace(const std::string& path, absl::string_view data) override;
  absl::Status RemoveDirectory(const std::string& path) override;
  absl::Status ReplaceSymlink(const std::string& link, const std::string& target) override;
  absl::StatusOr<std::string> ReadSymlink(const std::string& path) override;
  absl::Status ChangeGroup(const std::string& path, const std::string& group) override;
  // Every overwrite, in order: (path, data written).
  std::vector<std::pair<std::string, std::string>> overwrites();

  // Fails the next `count` mutating operations with `code`.
  void FailNext(absl::StatusCode code, int count = 1);
  // Lets `skip` operations succeed, then fails the next one.
  void FailAfter(int skip, absl::StatusCode code);
  // Fails every mutating operation from now on (a full or read-only disk).
  void FailAll(absl::StatusCode code);
  void ClearFailures();
  // Fails only the next Sync of an appendable file (writes still succeed).
  void FailNextSync(absl::StatusCode code);
  // Drops every unsynced byte.
  void Crash();
  // Test access to raw content (written, not only durable).
  std::string Content(const std::string& path);
  void SetContent(const std::string& path, const std::string& data);
  bool Exists(const std::string& path);
  int sync_count();
  // The group ChangeGroup gave `path` ("" if none).
  std::string Group(const std::string& path);
  // Groups ChangeGroup knows (default: "ssl-cert"); others are NOT_FOUND.
  void SetKnownGroups(std::vector<std::string> groups);

 private:
  friend class FakeAppendableFile;
  struct File {
    std::string data;
    size_t durable = 0;
  };
  absl::Status MaybeFail() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<std::string, File> files_ ABSL_GUARDED_BY(mu_);
  // link path -> target as stored (relative to the link's directory).
  std::map<std::string, std::string> symlinks_ ABSL_GUARDED_BY(mu_);
  // `path` with a symlinked directory prefix replaced by its target.
  std::string ResolveLocked(const std::string& path) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusCode fail_code_ ABSL_GUARDED_BY(mu_) = absl::StatusCode::kOk;
  int fail_count_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_skip_ ABSL_GUARDED_BY(mu_) = 0;
  int syncs_ ABSL_GUARDED_BY(mu_) = 0;
  absl::StatusCode fail_sync_ ABSL_GUARDED_BY(mu_) = absl::StatusCode::kOk;
  std::vector<std::pair<std::string, std::string>> overwrites_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> reads_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> groups_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> known_groups_ ABSL_GUARDED_BY(mu_) = {"ssl-cert"};
};

}  // namespace nodeward::platform

#endif  // NODEWARD_TESTS_FAKES_FAKE_FILE_SYSTEM_H_
