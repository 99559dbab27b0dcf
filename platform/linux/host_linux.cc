#include "platform/linux/host_linux.h"

#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/timex.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace nodeward::platform {
namespace {

// MemAvailable in bytes, or 0 when /proc/meminfo does not say.
uint64_t MemAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (!absl::ConsumePrefix(&v, "MemAvailable:")) continue;
    v = absl::StripAsciiWhitespace(v);
    absl::ConsumeSuffix(&v, " kB");
    uint64_t kb = 0;
    if (absl::SimpleAtoi(v, &kb)) return kb * 1024;
  }
  return 0;
}

}  // namespace

absl::StatusOr<HostSample> LinuxHostProbe::Sample() {
  struct sysinfo si {};
  if (sysinfo(&si) != 0) {
    return absl::InternalError(absl::StrCat("sysinfo: ", std::strerror(errno)));
  }
  HostSample s;
  s.uptime_seconds = static_cast<uint64_t>(si.uptime);
  for (int i = 0; i < 3; ++i) s.load[i] = static_cast<double>(si.loads[i]) / (1 << SI_LOAD_SHIFT);
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  s.cpus = cpus > 0 ? static_cast<uint32_t>(cpus) : 0;
  s.memory_total_bytes = static_cast<uint64_t>(si.totalram) * si.mem_unit;
  s.memory_available_bytes = MemAvailable();
  if (s.memory_available_bytes == 0) {
    s.memory_available_bytes = static_cast<uint64_t>(si.freeram + si.bufferram) * si.mem_unit;
  }
  struct timex tx {};
  tx.modes = 0;  // read only
  const int state = adjtimex(&tx);
  if (state < 0) {
    s.clock_error = absl::StrCat("adjtimex: ", std::strerror(errno));
  } else {
    s.clock_known = true;
    s.clock_synchronised = state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
    s.clock_max_error_us = tx.maxerror;
    s.clock_estimated_error_us = tx.esterror;
  }
  return s;
}

absl::StatusOr<DiskSample> LinuxHostProbe::Disk(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) {
    return absl::InternalError(absl::StrCat("statvfs ", path, ": ", std::strerror(errno)));
  }
  DiskSample d;
  d.total_bytes = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
  d.available_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  d.free_inodes = st.f_favail;
  return d;
}

}  // namespace nodeward::platform
