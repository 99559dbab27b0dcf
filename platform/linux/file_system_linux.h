#ifndef NODEWARD_PLATFORM_LINUX_FILE_SYSTEM_LINUX_H_
#define NODEWARD_PLATFORM_LINUX_FILE_SYSTEM_LINUX_H_

#ifndef __linux__
#error "file_system_linux is Linux-only"
#endif

#include "platform/file_system.h"

namespace nodeward::platform {

// POSIX files with O_CLOEXEC, fdatasync and directory fsync.
class LinuxFileSystem final : public FileSystem {
 public:
  // platform::FileSystem
  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::StatusOr<size_t> ReadFileInto(const std::string& path, char* out,
                                      size_t capacity) override;
  absl::Status WriteFileAtomically(const std::string& path, absl::string_view data,
                                   uint32_t mode) override;
  absl::StatusOr<AppendableFilePtr> OpenForAppend(const std::string& path,
                                                  uint32_t mode) override;
  absl::Status MakeDirectory(const std::string& path, uint32_t mode) override;
  absl::Status RemoveFile(const std::string& path) override;
  absl::StatusOr<std::vector<Entry>> ListTree(const std::string& dir) override;
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override;
  absl::Status OverwriteInPlace(const std::string& path, absl::string_view data) override;
  absl::Status RemoveDirectory(const std::string& path) override;
  absl::Status ReplaceSymlink(const std::string& link, const std::string& target) override;
  absl::StatusOr<std::string> ReadSymlink(const std::string& path) override;
  absl::Status ChangeGroup(const std::string& path, const std::string& group) override;
};

}  // namespace nodeward::platform

#endif  // NODEWARD_PLATFORM_LINUX_FILE_SYSTEM_LINUX_H_
