#include "agent/state/record_framing.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/crypto.h"

namespace nodeward {
namespace {
constexpr absl::string_view kMagic = "NWJ1";
constexpr size_t kHeader = 4 + 4 + 8;
constexpr uint32_t kMaxBody = 1 << 20;
}  // namespace

std::string EncodeFrame(absl::string_view body) {
  std::string out(kMagic);
  uint32_t len = static_cast<uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out.append(Sha256(body).substr(0, 8));
  out.append(body.data(), body.size());
  return out;
}

absl::StatusOr<DecodedFrames> DecodeFrames(absl::string_view data) {
  DecodedFrames out;
  size_t pos = 0;
  while (pos < data.size()) {
    absl::string_view rest = data.substr(pos);
    if (rest.size() < kHeader) {
      out.torn_tail = true;
      break;
    }
    if (rest.substr(0, 4) != kMagic) {
      // A crash can leave zeros past the last fsync'd frame (the size was
      // extended, the data never written); anything else is corruption.
      if (rest.find_first_not_of('\0') == absl::string_view::npos) {
        out.torn_tail = true;
        break;
      }
      return absl::DataLossError(absl::StrCat("journal frame at byte ", pos, " has a bad magic"));
    }
    uint32_t len = 0;
    for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(static_cast<uint8_t>(rest[4 + i])) << (8 * i);
    if (len > kMaxBody) {
      return absl::DataLossError(absl::StrCat("journal frame at byte ", pos, " claims ", len, " bytes"));
    }
    if (rest.size() < kHeader + len) {
      out.torn_tail = true;
      break;
    }
    absl::string_view body = rest.substr(kHeader, len);
    if (Sha256(body).substr(0, 8) != rest.substr(8, 8)) {
      if (kHeader + len == rest.size()) {
        out.torn_tail = true;
        break;
      }
      return absl::DataLossError(absl::StrCat("journal frame at byte ", pos, " fails its checksum"));
    }
    out.bodies.emplace_back(body);
    pos += kHeader + len;
    out.valid_bytes = pos;
  }
  return out;
}

}  // namespace nodeward
