#ifndef NODEWARD_TESTS_E2E_AGENT_PROCESS_H_
#define NODEWARD_TESTS_E2E_AGENT_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/common/crypto.h"
#include "nodeward/v1/config.pb.h"
#include "nodeward/v1/state.pb.h"
#include "tools/nodewardctl/client.h"

namespace nodeward::testing {

// A real nodeward-agent process on loopback with a fresh dev PKI in a temp
// dir. It learns readiness and the chosen port through its own sd_notify
// socket (NOTIFY_SOCKET), as systemd would.
class AgentProcess {
 public:
  AgentProcess();
  ~AgentProcess();

  const std::string& dir() const { return dir_; }
  nodeward::v1::AgentConfig& config() { return config_; }
  const Ed25519PrivateKey& key() const { return key_; }
  std::string boot_id() const { return "5f1c8c3e-8f1b-4e2f-9d4a-0c2b7b1e9a77"; }
  std::string node_id() const { return "e2e-node"; }

  void WriteConfig();
  // Starts the agent and waits for READY=1. `file_size_limit` > 0 sets
  // RLIMIT_FSIZE in the child (a way to make state writes fail even as root).
  absl::Status Start(long file_size_limit = 0);
  // RLIMIT_NOFILE for the agent's next Start (as systemd's default 1024 soft
  // limit would be, or a low hard limit).
  void SetFdLimit(long soft, long hard) {
    nofile_soft_ = soft;
    nofile_hard_ = hard;
  }
  // Sends `sig` and waits; returns the exit status (or 128+signal).
  int Stop(int sig = 15);
  // SIGHUP and wait for the READY=1 that ends the reload.
  absl::Status Reload(bool write_config = true);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Waits for exit without signalling (for refusal-to-start tests).
  int Wait();

  std::string target() const { return target_; }
  ClientTls Tls(const std::string& client = "client") const;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(const std::string& client = "client") const;
  // A signed ping for this agent.
  nodeward::v1::SignedCommand Ping(uint64_t sequence,
                                   const Ed25519PrivateKey* signer = nullptr) const;
  // `c` addressed to this agent with `sequence`, signed by key(), executed
  // over a fresh channel.
  ExecuteOutcome Execute(nodeward::v1::Command c, uint64_t sequence) const;
  absl::StatusOr<nodeward::v1::StatusReport> Status() const;
  std::string Log() const;

 private:
  absl::StatusOr<std::string> AwaitNotify(const std::string& want, int timeout_ms);

  std::string dir_;
  nodeward::v1::AgentConfig config_;
  Ed25519PrivateKey key_;
  int notify_fd_ = -1;
  pid_t pid_ = -1;
  std::string target_;
  long nofile_soft_ = 0;
  long nofile_hard_ = 0;
};

// Runs a command line, returns exit code and stdout.
int RunCommand(const std::string& cmd, std::string* out);

}  // namespace nodeward::testing

#endif  // NODEWARD_TESTS_E2E_AGENT_PROCESS_H_
