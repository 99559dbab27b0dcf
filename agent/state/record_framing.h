#ifndef NODEWARD_AGENT_STATE_RECORD_FRAMING_H_
#define NODEWARD_AGENT_STATE_RECORD_FRAMING_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeward {

// An append-only file of frames: "NWJ1" | u32 LE length | first 8 bytes of
// SHA-256(body) | body.
std::string EncodeFrame(absl::string_view body);

struct DecodedFrames {
  std::vector<std::string> bodies;
  // Bytes of whole, valid frames; anything after is a torn tail.
  uint64_t valid_bytes = 0;
  bool torn_tail = false;
};

// Splits a journal into frames. An incomplete or checksum-failing *last* frame
// is a torn tail (a crash mid-append: never acknowledged, safe to cut). A bad
// frame followed by more data is corruption: DATA_LOSS, never skipped.
absl::StatusOr<DecodedFrames> DecodeFrames(absl::string_view data);

}  // namespace nodeward

#endif  // NODEWARD_AGENT_STATE_RECORD_FRAMING_H_
