#include "tests/e2e/agent_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/common/proto_util.h"
#include "tools/nodewardctl/dev_pki.h"

namespace nodeward::testing {
namespace {

std::string MakeTempDir() {
  char tmpl[] = "/tmp/nw-e2e-XXXXXX";
  char* d = mkdtemp(tmpl);
  return d == nullptr ? std::string() : std::string(d);
}

}  // namespace

AgentProcess::AgentProcess() : dir_(MakeTempDir()), key_(Ed25519PrivateKey::Generate().value()) {
  DevPkiOptions pki;
  pki.out_dir = dir_ + "/pki";
  pki.with_test_certs = true;
  (void)GenerateDevPki(pki);
  std::ofstream(dir_ + "/boot_id") << boot_id() << "\n";
  config_.set_node_id(node_id());
  config_.set_boot_id_file(dir_ + "/boot_id");
  config_.set_listen_address("127.0.0.1:0");
  config_.mutable_tls()->set_server_cert_file(dir_ + "/pki/server.pem");
  config_.mutable_tls()->set_server_key_file(dir_ + "/pki/server.key");
  config_.mutable_tls()->set_client_ca_file(dir_ + "/pki/ca.pem");
  config_.set_state_dir(dir_ + "/state");
  config_.mutable_status_socket()->set_path(dir_ + "/status.sock");
  auto* k = config_.mutable_trust()->add_keys();
  k->set_public_key(key_.PublicRaw());
  k->add_roles("orchestrator");
  auto* p = config_.mutable_trust()->add_policies();
  p->set_command_type("ping");
  p->add_allowed_roles("orchestrator");
  p->set_threshold(1);
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) Stop(SIGKILL);
  if (notify_fd_ >= 0) close(notify_fd_);
  std::string out;
  if (!dir_.empty() && getenv("NODEWARD_KEEP_TEST_DIRS") == nullptr) {
    RunCommand("rm -rf '" + dir_ + "'", &out);
  }
}

ExecuteOutcome AgentProcess::Execute(nodeward::v1::Command c, uint64_t sequence) const {
  c.set_node_id(node_id());
  c.set_boot_id(boot_id());
  c.set_sequence(sequence);
  FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = Channel();
  if (!ch.ok()) return ExecuteOutcome{ch.status(), "", {}};
  absl::StatusOr<nodeward::v1::SignedCommand> signed_command = SignCommand(c, {&key_});
  if (!signed_command.ok()) return ExecuteOutcome{signed_command.status(), "", {}};
  return ExecuteCommand(ch->get(), *signed_command, absl::Seconds(10));
}

void AgentProcess::WriteConfig() { std::ofstream(dir_ + "/agent.json") << ToJsonPretty(config_); }

absl::Status AgentProcess::Start(long file_size_limit) {
  WriteConfig();
  if (notify_fd_ < 0) {
    notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string path = dir_ + "/notify.sock";
    std::strcpy(a.sun_path, path.c_str());
    if (bind(notify_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      return absl::ErrnoToStatus(errno, "bind notify socket");
    }
  }
  pid_ = fork();
  if (pid_ < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid_ == 0) {
    int log = open((dir_ + "/agent.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(log, 1);
    dup2(log, 2);
    setenv("NOTIFY_SOCKET", (dir_ + "/notify.sock").c_str(), 1);
    if (file_size_limit > 0) {
      rlimit r{static_cast<rlim_t>(file_size_limit), static_cast<rlim_t>(file_size_limit)};
      setrlimit(RLIMIT_FSIZE, &r);
    }
    if (nofile_soft_ > 0) {
      rlimit r{static_cast<rlim_t>(nofile_soft_), static_cast<rlim_t>(nofile_hard_)};
      setrlimit(RLIMIT_NOFILE, &r);
    }
    std::string config = dir_ + "/agent.json";
    execl(NODEWARD_AGENT_BIN, "nodeward-agent", "--config", config.c_str(), nullptr);
    _exit(127);
  }
  absl::StatusOr<std::string> ready = AwaitNotify("READY=1", 30000);
  if (!ready.ok()) return ready.status();
  auto pos = ready->find("listening on ");
  if (pos == std::string::npos) return absl::InternalError("READY without an address: " + *ready);
  target_ = ready->substr(pos + 13);
  target_ = target_.substr(0, target_.find_first_of("\n "));
  return absl::OkStatus();
}

absl::StatusOr<std::string> AgentProcess::AwaitNotify(const std::string& want, int timeout_ms) {
  absl::Time deadline = absl::Now() + absl::Milliseconds(timeout_ms);
  while (absl::Now() < deadline) {
    pollfd p{notify_fd_, POLLIN, 0};
    int n = poll(&p, 1, 200);
    if (n > 0) {
      char buf[4096];
      ssize_t got = recv(notify_fd_, buf, sizeof(buf), 0);
      if (got > 0) {
        std::string msg(buf, static_cast<size_t>(got));
        if (absl::StrContains(msg, want)) return msg;
      }
      continue;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat("agent exited (status ", status,
                                                 ") before ", want, "; log:\n", Log()));
    }
  }
  return absl::DeadlineExceededError("agent never sent " + want + "; log:\n" + Log());
}

int AgentProcess::Stop(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  return Wait();
}

int AgentProcess::Wait() {
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

absl::Status AgentProcess::Reload(bool write_config) {
  if (write_config) WriteConfig();
  kill(pid_, SIGHUP);
  absl::StatusOr<std::string> r = AwaitNotify("READY=1", 10000);
  return r.status();
}

ClientTls AgentProcess::Tls(const std::string& client) const {
  return ClientTls{dir_ + "/pki/ca.pem", dir_ + "/pki/" + client + ".pem",
                   dir_ + "/pki/" + client + ".key", ""};
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> AgentProcess::Channel(
    const std::string& client) const {
  return MakeAgentChannel(target_, Tls(client));
}

nodeward::v1::SignedCommand AgentProcess::Ping(uint64_t sequence,
                                               const Ed25519PrivateKey* signer) const {
  nodeward::v1::Command c;
  c.set_node_id(node_id());
  c.set_boot_id(boot_id());
  c.set_sequence(sequence);
  c.mutable_ping()->set_note("e2e");
  FillCommandDefaults(&c, absl::Now(), absl::Minutes(5));
  return SignCommand(c, {signer == nullptr ? &key_ : signer}).value();
}

absl::StatusOr<nodeward::v1::StatusReport> AgentProcess::Status() const {
  std::string out;
  int rc = RunCommand(absl::StrCat(NODEWARDCTL_BIN, " status --json --socket ", dir_,
                                   "/status.sock"),
                      &out);
  if (rc != 0) return absl::UnavailableError("nodewardctl status failed: " + out);
  nodeward::v1::StatusReport r;
  absl::Status s = ParseJson(out, &r, "status");
  if (!s.ok()) return s;
  return r;
}

std::string AgentProcess::Log() const {
  std::ifstream in(dir_ + "/agent.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RunCommand(const std::string& cmd, std::string* out) {
  out->clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace nodeward::testing
