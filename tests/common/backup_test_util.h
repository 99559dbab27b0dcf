#ifndef NODEWARD_TESTS_COMMON_BACKUP_TEST_UTIL_H_
#define NODEWARD_TESTS_COMMON_BACKUP_TEST_UTIL_H_

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "agent/backup/backup_format.h"
#include "agent/backup/backup_keys.h"

namespace nodeward::testing {

using backup::ByteSink;
using backup::ByteSource;
using backup::RsaPrivateKey;

// Hands out at most `step` bytes per Read, to show block sizes never matter.
class StringSource final : public ByteSource {
 public:
  explicit StringSource(std::string data, size_t step = size_t{1} << 30)
      : data_(std::move(data)), step_(step) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min({n, step_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::string data_;
  size_t step_;
  size_t pos_ = 0;
};

// Offers the zero-copy path, as a memory-mapped file does.
class ViewSource final : public ByteSource {
 public:
  explicit ViewSource(std::string data) : data_(std::move(data)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    absl::string_view v = Take(n);
    std::memcpy(buf, v.data(), v.size());
    return v.size();
  }
  bool CanView() const override { return true; }
  absl::StatusOr<absl::string_view> ReadView(size_t n) override { return Take(n); }

 private:
  absl::string_view Take(size_t n) {
    size_t k = std::min(n, data_.size() - pos_);
    absl::string_view v(data_.data() + pos_, k);
    pos_ += k;
    return v;
  }
  std::string data_;
  size_t pos_ = 0;
};

class StringSink final : public ByteSink {
 public:
  absl::Status Write(absl::string_view d) override {
    data.append(d.data(), d.size());
    return absl::OkStatus();
  }
  std::string data;
};

// Takes every offered buffer over, as the CLI's writer thread does, and hands
// back one of the same size full of junk: the format must never rely on a
// buffer's contents surviving WriteBuffer.
class SwappingSink final : public ByteSink {
 public:
  absl::Status Write(absl::string_view d) override {
    data.append(d.data(), d.size());
    return absl::OkStatus();
  }
  absl::Status WriteBuffer(std::string* buffer, size_t offset, size_t size) override {
    data.append(*buffer, offset, size);
    std::string junk(buffer->size(), static_cast<char>(0xa5 ^ swaps));
    std::swap(*buffer, junk);
    kept.push_back(std::move(junk));  // keep it alive: a stale pointer would read freed memory
    ++swaps;
    return absl::OkStatus();
  }
  std::string data;
  std::vector<std::string> kept;
  int swaps = 0;
};

// Two RSA-3072 keys, generated once per process (generation is slow).
struct TestKeys {
  RsaPrivateKey a = RsaPrivateKey::Generate().value();
  RsaPrivateKey b = RsaPrivateKey::Generate().value();
};
inline const TestKeys& K() {
  static const TestKeys* keys = new TestKeys();
  return *keys;
}

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_COMMON_BACKUP_TEST_UTIL_H_
