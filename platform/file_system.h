#ifndef NODEWARD_PLATFORM_FILE_SYSTEM_H_
#define NODEWARD_PLATFORM_FILE_SYSTEM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeward::platform {

// A file opened for appending. Not thread-safe: callers serialize.
class AppendableFile {
 public:
  virtual ~AppendableFile() = default;
  // Appends all of `data` (retrying short writes). On error some prefix may
  // have been written. Errors: the errno of write(2) (ENOSPC ->
  // RESOURCE_EXHAUSTED, EIO -> INTERNAL, ...).
  virtual absl::Status Append(absl::string_view data) = 0;
  // Makes everything appended so far durable (fdatasync).
  virtual absl::Status Sync() = 0;
  // Cuts the file back to `size` bytes and syncs.
  virtual absl::Status Truncate(uint64_t size) = 0;
  virtual uint64_t Size() const = 0;
};

using AppendableFilePtr = std::unique_ptr<AppendableFile>;

// Every file operation the agent's state code makes. Thread-safe.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // NOT_FOUND if absent.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // Reads a whole file straight into `out` (at most `capacity` bytes) with no
  // buffer in between, for secrets that must only ever be in the caller's
  // locked memory. Returns the size. NOT_FOUND if absent; OUT_OF_RANGE (and
  // `out` wiped) if the file is larger than `capacity`.
  virtual absl::StatusOr<size_t> ReadFileInto(const std::string& path, char* out,
                                              size_t capacity) = 0;
  // Replaces `path` atomically and durably: temp file in the same directory,
  // fsync, rename, fsync of the directory. A crash leaves old or new content.
  // Never follows a symlink: one at the temporary name is removed, one at
  // `path` is replaced.
  virtual absl::Status WriteFileAtomically(const std::string& path, absl::string_view data,
                                           uint32_t mode) = 0;
  // Opens (creating with `mode` if absent) for append; the directory entry of a
  // new file is made durable.
  virtual absl::StatusOr<AppendableFilePtr> OpenForAppend(const std::string& path,
                                                          uint32_t mode) = 0;
  // Creates the directory (and parents) if absent; mode applies to the last.
  virtual absl::Status MakeDirectory(const std::string& path, uint32_t mode) = 0;
  // Removes a file; OK if it did not exist.
  virtual absl::Status RemoveFile(const std::string& path) = 0;

  // For the wipe:
  // Every file (and symlink) below `dir`, recursively, not following links;
  // directories last, deepest first, each marked. Empty if `dir` is absent.
  struct Entry {
    std::string path;
    bool directory = false;
  };
  virtual absl::StatusOr<std::vector<Entry>> ListTree(const std::string& dir) = 0;
  // Size of a regular file (NOT_FOUND if absent; FAILED_PRECONDITION for
  // anything else, e.g. a symlink, which is never followed).
  virtual absl::StatusOr<uint64_t> FileSize(const std::string& path) = 0;
  // Writes `data` over a regular file's bytes in place (same inode, from
  // offset 0, exactly its size) and flushes it to disk.
  virtual absl::Status OverwriteInPlace(const std::string& path, absl::string_view data) = 0;
  // Removes an empty directory (OK if absent) and makes it durable.
  virtual absl::Status RemoveDirectory(const std::string& path) = 0;

  // For certificates:
  // Points the symlink `link` at `target` (stored as given, e.g. "v3")
  // atomically: a new symlink beside it renamed over it (rename(2)), then the
  // directory synced. A reader sees the old target or the new one.
  virtual absl::Status ReplaceSymlink(const std::string& link, const std::string& target) = 0;
  // The target of the symlink `path` (NOT_FOUND if absent;
  // FAILED_PRECONDITION if it is anything but a symlink).
  virtual absl::StatusOr<std::string> ReadSymlink(const std::string& path) = 0;
  // Gives the file `path` (never a symlink's target) the group `group`, by
  // name; the owner stays. NOT_FOUND for a group that does not exist.
  virtual absl::Status ChangeGroup(const std::string& path, const std::string& group) = 0;
};

using FileSystemPtr = std::unique_ptr<FileSystem>;

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_FILE_SYSTEM_H_
