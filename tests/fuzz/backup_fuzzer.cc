// libFuzzer: backup decryption reads files an attacker may have touched in
// object storage. Any input must end in a clean status, never a crash. The
// first byte picks: even, the input as a whole file; odd, a valid v2 file
// (encrypted in-process) with the input XORed over it, so the fuzzer gets
// past the header tag and into the chunk parser.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "agent/backup/backup_format.h"
#include "tests/common/backup_test_util.h"

namespace {

using Src = nodeward::testing::StringSource;
using Sink = nodeward::testing::StringSink;

struct Fixture {
  // 3072-bit generation is slow but happens once per fuzzing process.
  nodeward::backup::RsaPrivateKey key = nodeward::backup::RsaPrivateKey::Generate().value();
  std::string v2;
  Fixture() {
    Src in(std::string(100, 'p'));
    Sink out;
    (void)nodeward::backup::Encrypt(nodeward::backup::Format::kV2, key.public_key(), &in, &out, 16);
    v2 = out.data;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  if (size == 0) return 0;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 1) {
    std::string file = f->v2;
    for (size_t i = 0; i < input.size() && i < file.size(); ++i) file[i] ^= input[i];
    if (input.size() > file.size()) file.append(input.substr(file.size()));
    input = file;
  }
  Src in(input);
  Sink out;
  (void)nodeward::backup::Decrypt({&f->key}, &in, &out, nullptr, true);
  Src again(input);
  (void)nodeward::backup::Inspect(&again);
  return 0;
}
