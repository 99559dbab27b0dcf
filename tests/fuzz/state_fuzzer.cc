// libFuzzer: the command journal and the audit chain are read back from disk
// at startup and by `nodewardctl audit verify`; hostile or corrupt files must
// give a clean error. First byte picks journal (even) or audit file (odd).
#include <cstddef>
#include <cstdint>

#include "agent/state/audit_log.h"
#include "agent/state/command_ledger.h"
#include "agent/state/record_framing.h"
#include "tests/fakes/fake_file_system.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    (void)nodeward::DecodeFrames(rest);
    nodeward::platform::FakeFileSystem fs;
    nodeward::v1::LedgerSnapshot snap;
    snap.set_journal_generation(1);
    fs.SetContent("/s/snapshot", snap.SerializeAsString());
    fs.SetContent("/s/journal.1", rest);
    nodeward::LedgerOptions o;
    o.dir = "/s";
    (void)nodeward::CommandLedger::Open(&fs, o, absl::FromUnixSeconds(1800000000));
  } else {
    (void)nodeward::VerifyAuditChain(rest);
  }
  return 0;
}
