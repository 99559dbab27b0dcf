#include "platform/linux/file_system_linux.h"

#include <dirent.h>
#include <grp.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace nodeward::platform {
namespace {

absl::Status Errno(int err, absl::string_view action, absl::string_view path) {
  return absl::ErrnoToStatus(err, absl::StrCat(action, " ", path));
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

absl::Status SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "open directory", dir);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return Errno(err, "fsync directory", dir);
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(errno, "write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

class LinuxAppendableFile final : public AppendableFile {
 public:
  LinuxAppendableFile(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  ~LinuxAppendableFile() override { close(fd_); }

  absl::Status Append(absl::string_view data) override {
    absl::Status s = WriteAll(fd_, data, path_);
    struct stat st;
    // On a short write the file may have grown by a prefix; learn the truth.
    if (fstat(fd_, &st) == 0) size_ = static_cast<uint64_t>(st.st_size);
    return s;
  }
  absl::Status Sync() override {
    if (fdatasync(fd_) != 0) return Errno(errno, "fdatasync", path_);
    return absl::OkStatus();
  }
  absl::Status Truncate(uint64_t size) override {
    if (ftruncate(fd_, static_cast<off_t>(size)) != 0) return Errno(errno, "ftruncate", path_);
    size_ = size;
    return Sync();
  }
  uint64_t Size() const override { return size_; }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
};

}  // namespace

absl::StatusOr<std::string> LinuxFileSystem::ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "open", path);
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return Errno(err, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::StatusOr<size_t> LinuxFileSystem::ReadFileInto(const std::string& path, char* out,
                                                    size_t capacity) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "open", path);
  size_t got = 0;
  while (true) {
    // One byte of room past `capacity` tells a larger file; it lands in
    // `extra`, which is wiped with `out`.
    char extra = 0;
    char* dst = got < capacity ? out + got : &extra;
    size_t room = got < capacity ? capacity - got : 1;
    ssize_t n = read(fd, dst, room);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      explicit_bzero(out, got);
      return Errno(err, "read", path);
    }
    if (n == 0) break;
    if (dst == &extra) {
      close(fd);
      explicit_bzero(out, capacity);
      explicit_bzero(&extra, 1);
      return absl::OutOfRangeError(
          absl::StrCat("read ", path, ": larger than ", capacity, " bytes"));
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  return got;
}

absl::Status LinuxFileSystem::WriteFileAtomically(const std::string& path, absl::string_view data,
                                                  uint32_t mode) {
  std::string tmp = absl::StrCat(path, ".tmp");
  // A leftover temporary (a crash) goes first; what is created is a new
  // file, never something a symlink planted at the name points to.
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT) return Errno(errno, "unlink", tmp);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Errno(errno, "create", tmp);
  absl::Status s = WriteAll(fd, data, tmp);
  if (s.ok() && fsync(fd) != 0) s = Errno(errno, "fsync", tmp);
  close(fd);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) s = Errno(errno, "rename to", path);
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  return SyncDirectory(DirName(path));
}

absl::StatusOr<AppendableFilePtr> LinuxFileSystem::OpenForAppend(const std::string& path,
                                                                 uint32_t mode) {
  struct stat st;
  bool existed = stat(path.c_str(), &st) == 0;
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode);
  if (fd < 0) return Errno(errno, "open for append", path);
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Errno(err, "stat", path);
  }
  if (!existed) {
    absl::Status s = SyncDirectory(DirName(path));
    if (!s.ok()) {
      close(fd);
      return s;
    }
  }
  return AppendableFilePtr(
      new LinuxAppendableFile(fd, path, static_cast<uint64_t>(st.st_size)));
}

absl::Status LinuxFileSystem::MakeDirectory(const std::string& path, uint32_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("make directory: empty path");
  std::string parent = DirName(path);
  struct stat st;
  if (parent != path && stat(parent.c_str(), &st) != 0) {
    absl::Status s = MakeDirectory(parent, 0755);
    if (!s.ok()) return s;
  }
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Errno(errno, "mkdir", path);
  if (stat(path.c_str(), &st) != 0) return Errno(errno, "stat", path);
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat(path, " is not a directory"));
  return absl::OkStatus();
}

absl::Status LinuxFileSystem::RemoveFile(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return Errno(errno, "unlink", path);
  return absl::OkStatus();
}

namespace {

absl::Status ListInto(const std::string& dir, std::vector<FileSystem::Entry>* out) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return Errno(errno, "open directory", dir);
  std::vector<std::string> subdirs;
  absl::Status s;
  errno = 0;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
      s = Errno(errno, "stat", path);
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      subdirs.push_back(path);
    } else {
      out->push_back({path, false});
    }
  }
  closedir(d);
  if (!s.ok()) return s;
  for (const std::string& sub : subdirs) {
    if (absl::Status r = ListInto(sub, out); !r.ok()) return r;
    out->push_back({sub, true});  // after its content
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<FileSystem::Entry>> LinuxFileSystem::ListTree(const std::string& dir) {
  std::vector<Entry> out;
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return out;
    return Errno(errno, "stat", dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  if (absl::Status s = ListInto(dir, &out); !s.ok()) return s;
  return out;
}

absl::StatusOr<uint64_t> LinuxFileSystem::FileSize(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return Errno(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  }
  return static_cast<uint64_t>(st.st_size);
}

absl::Status LinuxFileSystem::OverwriteInPlace(const std::string& path, absl::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "open for overwrite", path);
  struct stat st;
  absl::Status s;
  if (fstat(fd, &st) != 0) {
    s = Errno(errno, "stat", path);
  } else if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != data.size()) {
    s = absl::FailedPreconditionError(
        absl::StrCat("overwrite ", path, ": not a regular file of ", data.size(), " bytes"));
  }
  for (size_t off = 0; s.ok() && off < data.size();) {
    ssize_t w = pwrite(fd, data.data() + off, data.size() - off, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      s = Errno(w < 0 ? errno : EIO, "overwrite", path);
      break;
    }
    off += static_cast<size_t>(w);
  }
  if (s.ok() && fdatasync(fd) != 0) s = Errno(errno, "fdatasync", path);
  close(fd);
  return s;
}

absl::Status LinuxFileSystem::RemoveDirectory(const std::string& path) {
  if (rmdir(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return Errno(errno, "rmdir", path);
  }
  return SyncDirectory(DirName(path));
}

absl::Status LinuxFileSystem::ReplaceSymlink(const std::string& link, const std::string& target) {
  const std::string tmp = absl::StrCat(link, ".new");
  unlink(tmp.c_str());
  if (symlink(target.c_str(), tmp.c_str()) != 0) return Errno(errno, "symlink", tmp);
  if (rename(tmp.c_str(), link.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return Errno(err, "rename over", link);
  }
  return SyncDirectory(DirName(link));
}

absl::StatusOr<std::string> LinuxFileSystem::ReadSymlink(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return Errno(errno, "lstat", path);
  if (!S_ISLNK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a symlink"));
  }
  char buf[4096];
  const ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  if (n < 0) return Errno(errno, "readlink", path);
  return std::string(buf, static_cast<size_t>(n));
}

absl::Status LinuxFileSystem::ChangeGroup(const std::string& path, const std::string& group) {
  struct group gr;
  struct group* found = nullptr;
  std::vector<char> buf(16384);
  const int rc = getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found);
  if (rc != 0) return Errno(rc, "look up group", group);
  if (found == nullptr) return absl::NotFoundError(absl::StrCat("group ", group, " does not exist"));
  if (fchownat(AT_FDCWD, path.c_str(), static_cast<uid_t>(-1), gr.gr_gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno(errno, absl::StrCat("chgrp ", group), path);
  }
  return absl::OkStatus();
}

}  // namespace nodeward::platform
