#include "tests/fakes/fake_file_system.h"

#include <algorithm>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodeward::platform {

class FakeAppendableFile final : public AppendableFile {
 public:
  FakeAppendableFile(FakeFileSystem* fs, std::string path) : fs_(fs), path_(std::move(path)) {}
  absl::Status Append(absl::string_view data) override {
    absl::MutexLock lock(&fs_->mu_);
    if (absl::Status s = fs_->MaybeFail(); !s.ok()) return s;
    fs_->files_[path_].data.append(data.data(), data.size());
    return absl::OkStatus();
  }
  absl::Status Sync() override {
    absl::MutexLock lock(&fs_->mu_);
    if (absl::Status s = fs_->MaybeFail(); !s.ok()) return s;
    if (fs_->fail_sync_ != absl::StatusCode::kOk) {
      absl::Status s(fs_->fail_sync_, "injected sync failure");
      fs_->fail_sync_ = absl::StatusCode::kOk;
      return s;
    }
    auto& f = fs_->files_[path_];
    f.durable = f.data.size();
    ++fs_->syncs_;
    return absl::OkStatus();
  }
  absl::Status Truncate(uint64_t size) override {
    absl::MutexLock lock(&fs_->mu_);
    if (absl::Status s = fs_->MaybeFail(); !s.ok()) return s;
    auto& f = fs_->files_[path_];
    f.data.resize(size);
    f.durable = std::min<size_t>(f.durable, size);
    return absl::OkStatus();
  }
  uint64_t Size() const override {
    absl::MutexLock lock(&fs_->mu_);
    auto it = fs_->files_.find(path_);
    return it == fs_->files_.end() ? 0 : it->second.data.size();
  }

 private:
  FakeFileSystem* fs_;
  std::string path_;
};

absl::Status FakeFileSystem::MaybeFail() {
  if (fail_code_ == absl::StatusCode::kOk || fail_count_ == 0) return absl::OkStatus();
  if (fail_skip_ > 0) {
    --fail_skip_;
    return absl::OkStatus();
  }
  if (fail_count_ > 0) --fail_count_;
  return absl::Status(fail_code_, "injected failure");
}

absl::StatusOr<std::string> FakeFileSystem::ReadFile(const std::string& path) {
  absl::MutexLock lock(&mu_);
  reads_.push_back(path);
  auto it = files_.find(ResolveLocked(path));
  if (it == files_.end()) return absl::NotFoundError(absl::StrCat("open ", path));
  return it->second.data;
}

absl::StatusOr<size_t> FakeFileSystem::ReadFileInto(const std::string& path, char* out,
                                                    size_t capacity) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(ResolveLocked(path));
  if (it == files_.end()) return absl::NotFoundError(absl::StrCat("open ", path));
  if (it->second.data.size() > capacity) {
    return absl::OutOfRangeError(absl::StrCat("read ", path, ": larger than ", capacity));
  }
  std::memcpy(out, it->second.data.data(), it->second.data.size());
  return it->second.data.size();
}

std::vector<std::string> FakeFileSystem::reads() {
  absl::MutexLock lock(&mu_);
  return reads_;
}

absl::Status FakeFileSystem::WriteFileAtomically(const std::string& path, absl::string_view data,
                                                 uint32_t) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = MaybeFail(); !s.ok()) return s;
  files_[path] = File{std::string(data), data.size()};
  ++syncs_;
  return absl::OkStatus();
}

absl::StatusOr<AppendableFilePtr> FakeFileSystem::OpenForAppend(const std::string& path,
                                                                uint32_t) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = MaybeFail(); !s.ok()) return s;
  files_.emplace(path, File{});
  return AppendableFilePtr(new FakeAppendableFile(this, path));
}

absl::Status FakeFileSystem::MakeDirectory(const std::string&, uint32_t) {
  absl::MutexLock lock(&mu_);
  return MaybeFail();
}

absl::Status FakeFileSystem::RemoveFile(const std::string& path) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = MaybeFail(); !s.ok()) return s;
  files_.erase(path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<FileSystem::Entry>> FakeFileSystem::ListTree(const std::string& dir) {
  absl::MutexLock lock(&mu_);
  // Files only: the fake has no directories of its own.
  std::vector<Entry> out;
  for (const auto& [path, f] : files_) {
    if (path.rfind(dir + "/", 0) == 0) out.push_back({path, false});
  }
  return out;
}

absl::StatusOr<uint64_t> FakeFileSystem::FileSize(const std::string& path) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return absl::NotFoundError(path);
  return static_cast<uint64_t>(it->second.data.size());
}

absl::Status FakeFileSystem::OverwriteInPlace(const std::string& path, absl::string_view data) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = MaybeFail(); !s.ok()) return s;
  auto it = files_.find(path);
  if (it == files_.end()) return absl::NotFoundError(path);
  if (it->second.data.size() != data.size()) return absl::FailedPreconditionError("size");
  it->second.data.assign(data.data(), data.size());
  it->second.durable = data.size();
  overwrites_.emplace_back(path, std::string(data));
  return absl::OkStatus();
}

absl::Status FakeFileSystem::RemoveDirectory(const std::string&) {
  absl::MutexLock lock(&mu_);
  return MaybeFail();
}

std::vector<std::pair<std::string, std::string>> FakeFileSystem::overwrites() {
  absl::MutexLock lock(&mu_);
  return overwrites_;
}

void FakeFileSystem::FailAfter(int skip, absl::StatusCode code) {
  absl::MutexLock lock(&mu_);
  fail_code_ = code;
  fail_count_ = 1;
  fail_skip_ = skip;
}

void FakeFileSystem::FailNext(absl::StatusCode code, int count) {
  absl::MutexLock lock(&mu_);
  fail_code_ = code;
  fail_count_ = count;
  fail_skip_ = 0;
}

void FakeFileSystem::FailAll(absl::StatusCode code) {
  absl::MutexLock lock(&mu_);
  fail_code_ = code;
  fail_count_ = -1;
}

void FakeFileSystem::ClearFailures() {
  absl::MutexLock lock(&mu_);
  fail_code_ = absl::StatusCode::kOk;
  fail_count_ = 0;
}

void FakeFileSystem::FailNextSync(absl::StatusCode code) {
  absl::MutexLock lock(&mu_);
  fail_sync_ = code;
}

void FakeFileSystem::Crash() {
  absl::MutexLock lock(&mu_);
  for (auto& [p, f] : files_) f.data.resize(f.durable);
}

std::string FakeFileSystem::Content(const std::string& path) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(path);
  return it == files_.end() ? std::string() : it->second.data;
}

void FakeFileSystem::SetContent(const std::string& path, const std::string& data) {
  absl::MutexLock lock(&mu_);
  files_[path] = File{data, data.size()};
}

bool FakeFileSystem::Exists(const std::string& path) {
  absl::MutexLock lock(&mu_);
  return files_.count(path) != 0;
}

int FakeFileSystem::sync_count() {
  absl::MutexLock lock(&mu_);
  return syncs_;
}

std::string FakeFileSystem::ResolveLocked(const std::string& path) const {
  for (const auto& [link, target] : symlinks_) {
    if (path.size() > link.size() && path.compare(0, link.size(), link) == 0 &&
        path[link.size()] == '/') {
      const std::string dir = link.substr(0, link.rfind('/'));
      return absl::StrCat(dir, "/", target, path.substr(link.size()));
    }
  }
  return path;
}

absl::Status FakeFileSystem::ReplaceSymlink(const std::string& link, const std::string& target) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = MaybeFail(); !s.ok()) return s;
  if (files_.count(link) != 0) files_.erase(link);  // rename(2) replaces a file too
  symlinks_[link] = target;
  return absl::OkStatus();
}

absl::StatusOr<std::string> FakeFileSystem::ReadSymlink(const std::string& path) {
  absl::MutexLock lock(&mu_);
  auto it = symlinks_.find(path);
  if (it != symlinks_.end()) return it->second;
  if (files_.count(path) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a symlink"));
  }
  return absl::NotFoundError(absl::StrCat("lstat ", path));
}

absl::Status FakeFileSystem::ChangeGroup(const std::string& path, const std::string& group) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = MaybeFail(); !s.ok()) return s;
  if (std::find(known_groups_.begin(), known_groups_.end(), group) == known_groups_.end()) {
    return absl::NotFoundError(absl::StrCat("group ", group, " does not exist"));
  }
  if (files_.count(path) == 0) return absl::NotFoundError(absl::StrCat("chgrp ", path));
  groups_[path] = group;
  return absl::OkStatus();
}

std::string FakeFileSystem::Group(const std::string& path) {
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(path);
  return it == groups_.end() ? "" : it->second;
}

void FakeFileSystem::SetKnownGroups(std::vector<std::string> groups) {
  absl::MutexLock lock(&mu_);
  known_groups_ = std::move(groups);
}

}  // namespace nodeward::platform
