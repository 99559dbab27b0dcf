// nodeward-agent: thin main. Builds the Linux platform, runs AgentApp, and
// turns signals into Reload/Stop on the main thread.
#include <signal.h>
#include <algorithm>
#include <sys/prctl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "agent/app/agent_app.h"
#include "agent/common/logging.h"
#include "agent/common/secure_buffer.h"
#include "agent/server/tls.h"
#include "agent/app/firewall_boot.h"
#include "platform/linux/clock_steps_linux.h"
#include "platform/linux/conntrack_linux.h"
#include "platform/linux/file_system_linux.h"
#include "platform/linux/journal_linux.h"
#include "platform/linux/logins_linux.h"
#include "platform/linux/host_linux.h"
#include "platform/linux/service_control_linux.h"
#include "platform/linux/listener_probe_linux.h"
#include "platform/linux/nft_packet_filter_linux.h"
#include "platform/linux/service_notifier_linux.h"
#include "platform/linux/systemd_mounts.h"
#include "platform/linux/volume_linux.h"

ABSL_FLAG(std::string, config, "/etc/nodeward/agent.json", "agent config file (protobuf JSON)");
ABSL_FLAG(bool, restore_firewall_only, false,
          "put the last confirmed firewall state (or the management-only baseline) into the "
          "kernel and exit: the early boot step, before the network (nodeward-firewall.service)");

ABSL_FLAG(std::string, fallback_state, "/var/lib/nodeward/firewall.pb",
          "with --restore-firewall-only: the firewall state restored when the config cannot be "
          "loaded (it records the management access it was written under)");

namespace {
// sysexits.h: a configuration error a restart cannot fix.
constexpr int kExitConfig = 78;
}  // namespace

#ifdef NODEWARD_TEST_HOOKS
class TeeRandom final : public nodeward::platform::Random {
 public:
  TeeRandom(std::unique_ptr<nodeward::platform::Random> inner, int fd)
      : inner_(std::move(inner)), fd_(fd) {}
  absl::Status Fill(absl::Span<uint8_t> out) override {
    absl::Status s = inner_->Fill(out);
    if (s.ok() && write(fd_, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
      return absl::InternalError("test hook: key pipe");
    }
    return s;
  }

 private:
  std::unique_ptr<nodeward::platform::Random> inner_;
  int fd_;
};

// Crash tests of the wipe (threats.md case 28): before the first LUKS header
// overwrite, create the file NODEWARD_TEST_WIPE_PAUSE names and stop there
// until killed. Everything else goes to the real implementation.
class PausingCrypt final : public nodeward::platform::Crypt {
 public:
  PausingCrypt(std::unique_ptr<nodeward::platform::Crypt> inner, std::string flag)
      : inner_(std::move(inner)), flag_(std::move(flag)) {}
  absl::Status CheckAvailable() override { return inner_->CheckAvailable(); }
  absl::StatusOr<std::string> Format(const nodeward::platform::BlockDevice& d,
                                     absl::Span<const uint8_t> key,
                                     const nodeward::platform::CryptParams& p) override {
    return inner_->Format(d, key, p);
  }
  absl::Status Activate(const nodeward::platform::BlockDevice& d, const std::string& name,
                        absl::Span<const uint8_t> key,
                        const nodeward::platform::CryptParams& p) override {
    return inner_->Activate(d, name, key, p);
  }
  absl::StatusOr<nodeward::platform::CryptStatus> Status(const std::string& name) override {
    return inner_->Status(name);
  }
  absl::StatusOr<nodeward::platform::LuksHeader> ReadHeader(
      const nodeward::platform::BlockDevice& d) override {
    return inner_->ReadHeader(d);
  }
  absl::Status Deactivate(const std::string& name) override { return inner_->Deactivate(name); }
  absl::Status ForceDeactivate(const std::string& name) override {
    return inner_->ForceDeactivate(name);
  }
  absl::StatusOr<uint64_t> EraseHeader(const nodeward::platform::BlockDevice&) override {
    int fd = open(flag_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    while (true) pause();  // SIGKILL ends it
  }

 private:
  std::unique_ptr<nodeward::platform::Crypt> inner_;
  std::string flag_;
};
#endif

int main(int argc, char** argv) {
  // Long options are spelled with dashes (--restore-firewall-only), as in
  // the units and man page; Abseil's flag names have underscores.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> fixed;
  for (std::string& a : args) {
    if (a.rfind("--", 0) == 0) {
      const size_t end = std::min(a.find('='), a.size());
      std::replace(a.begin() + 2, a.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
    }
    fixed.push_back(a.data());
  }
  fixed.push_back(nullptr);
  absl::ParseCommandLine(argc, fixed.data());

  // Key material must never reach a core file.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  // All of the process's memory stays out of swap: whatever copy of a key
  // exists (gRPC's copy of the TLS key PEM, stdio buffers, handshake
  // secrets) is in locked memory. MCL_ONFAULT locks pages as they are
  // touched, so reserved-but-unused address space costs nothing.
  // docs/transport.md lists the copies; the unit sizes LimitMEMLOCK=.
  std::string memory_lock_problem;
  // Two malloc arenas instead of 8 per core: each reserves 64 MiB of
  // address space, all of which counts against RLIMIT_MEMLOCK once locked.
  mallopt(M_ARENA_MAX, 2);
  // The early boot step holds no key and runs with systemd's default
  // 8 MiB RLIMIT_MEMLOCK: nothing to lock there.
  if (!absl::GetFlag(FLAGS_restore_firewall_only) &&
      mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) {
    memory_lock_problem = std::string("mlockall: ") + strerror(errno);
    NW_LOG_WARNING("memory not locked: ", memory_lock_problem);
  }
  // OpenSSL's own copies of private keys (the TLS key as gRPC loads it,
  // provisioned backup keys, handshake secrets) in locked, non-dumpable
  // memory too. 2 MiB: ~2 KiB per key or concurrent handshake.
  if (absl::Status s = nodeward::EnableOpenSslSecureHeap(2 << 20); !s.ok()) {
    NW_LOG_WARNING("private keys inside OpenSSL: ", s.message());
  }
  // Room for connections: the soft fd limit (1024 by default) goes up to
  // the hard one (the unit sets LimitNOFILE=). gRPC 1.51 stops accepting
  // for good after one EMFILE; the listener probe catches that too.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) NW_LOG_WARNING("raise RLIMIT_NOFILE failed");
  }
  // A full disk or a file-size limit must be an error we report, not death.
  signal(SIGXFSZ, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);

  // Block the signals we handle before any thread starts, so only the
  // sigtimedwait loop below sees them.
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);

  if (absl::GetFlag(FLAGS_restore_firewall_only)) {
    nodeward::platform::LinuxFileSystem fs;
    bool config_error = false;
    absl::StatusOr<nodeward::FirewallBootResult> r = nodeward::RestoreFirewallOnly(
        &fs, absl::GetFlag(FLAGS_config),
        [](const std::string& table) -> nodeward::platform::PacketFilterPtr {
          return std::make_unique<nodeward::platform::NftPacketFilter>(table);
        },
        &config_error, absl::GetFlag(FLAGS_fallback_state));
    if (!r.ok()) {
      NW_LOG_ERROR("nodeward-agent --restore-firewall-only: ", r.status().message());
      // The config could not be read or is invalid: nothing was changed.
      return config_error ? kExitConfig : 1;
    }
    if (r->state_lost) {
      NW_LOG_ERROR("firewall at boot: ", r->summary);
    } else {
      NW_LOG_INFO("firewall at boot: ", r->summary);
    }
    return 0;
  }

  nodeward::PinTlsCipherSuites();
  nodeward::InstallProtobufLogHandler();

  nodeward::AgentDeps deps;
  deps.clock = std::make_unique<nodeward::platform::SystemClock>();
  deps.fs = std::make_unique<nodeward::platform::LinuxFileSystem>();
  deps.notifier = std::make_unique<nodeward::platform::SystemdNotifier>();
  deps.make_packet_filter = [](const std::string& table) -> nodeward::platform::PacketFilterPtr {
    return std::make_unique<nodeward::platform::NftPacketFilter>(table);
  };
  deps.conntrack = std::make_unique<nodeward::platform::LinuxConntrack>();
  deps.journal = std::make_unique<nodeward::platform::SystemdJournal>();
  deps.make_volumes = [](const std::string& by_id_dir, const std::vector<std::string>& roots,
                         const std::string& mount_with) {
    nodeward::AgentDeps::Volumes v;
    v.devices = std::make_unique<nodeward::platform::LinuxBlockDevices>(by_id_dir);
    v.crypt = std::make_unique<nodeward::platform::LinuxCrypt>();
    // Under systemd ($INVOCATION_ID is set for every unit it starts), systemd
    // mounts: the agent's own mount namespace (ProtectSystem=strict) would
    // hide a mount it made itself from the database.
    const bool under_systemd =
        getenv("INVOCATION_ID") != nullptr && access("/run/systemd/system", F_OK) == 0;
    if (mount_with == "systemd" || (mount_with.empty() && under_systemd)) {
      NW_LOG_INFO("volumes are mounted by systemd (transient .mount units)");
      v.filesystems = std::make_unique<nodeward::platform::SystemdFilesystems>(roots);
    } else {
      v.filesystems = std::make_unique<nodeward::platform::LinuxFilesystems>(roots);
    }
    v.random = std::make_unique<nodeward::platform::LinuxRandom>();
#ifdef NODEWARD_TEST_HOOKS
    // Key-hygiene tests only (never in a release build): hand every
    // generated volume key to the test through an inherited pipe, so the test
    // can search disks, state, logs and cores for it.
    if (const char* fd = getenv("NODEWARD_TEST_KEY_FD")) {
      v.random = std::make_unique<TeeRandom>(std::move(v.random), atoi(fd));
    }
    if (const char* flag = getenv("NODEWARD_TEST_WIPE_PAUSE")) {
      v.crypt = std::make_unique<PausingCrypt>(std::move(v.crypt), flag);
    }
#endif
    return v;
  };
  deps.memory_lock_problem = memory_lock_problem;
  deps.listener_probe = std::make_unique<nodeward::platform::LinuxListenerProbe>();
  deps.host = std::make_unique<nodeward::platform::LinuxHostProbe>();
  deps.services = std::make_unique<nodeward::platform::SystemdServiceControl>();
  deps.clock_steps = std::make_unique<nodeward::platform::LinuxClockStepWatcher>();
  deps.logins = std::make_unique<nodeward::platform::LogindLogins>();
  nodeward::AgentApp app(std::move(deps), absl::GetFlag(FLAGS_config));

  absl::Status started = app.Start();
  if (!started.ok()) {
    NW_LOG_ERROR("nodeward-agent cannot start: ", started.message());
    const bool config_error = nodeward::AgentApp::IsConfigurationStep(app.failed_step());
    app.Stop();
    return config_error ? kExitConfig : 1;
  }
  while (true) {
    timespec tick{1, 0};
    int sig = sigtimedwait(&handled, nullptr, &tick);
    if (sig == SIGHUP) {
      (void)app.Reload();
    } else if (sig == SIGTERM || sig == SIGINT) {
      break;
    } else {
      app.Tick();
    }
  }
  app.Stop();
  return 0;
}
