// The health stream and grpc.health.v1 against the real agent (issue 14
// point 1, docs/health.md): a change is pushed at once, min_interval_ms
// spaces and coalesces reports, a dead orchestrator's stream is noticed
// within 30 s by keepalive, and grpc.health.v1 answers for "" and
// nodeward.v1.NodeAgent with the report's acceptance.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/common/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "nodeward/v1/agent.grpc.pb.h"
#include "tests/common/status_matchers.h"
#include "tests/e2e/agent_process.h"

namespace nodeward::testing {
namespace {

using nodeward::v1::HealthReport;

// A TCP proxy on loopback for one connection, which can freeze: stop
// forwarding while keeping both sockets open, as a vanished orchestrator
// (a VM paused, a cable pulled) looks to the agent.
class FreezableProxy {
 public:
  explicit FreezableProxy(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(listen_fd_, 4);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~FreezableProxy() {
    stop_ = true;
    thread_.join();
    for (int fd : {listen_fd_, client_fd_, server_fd_}) {
      if (fd >= 0) close(fd);
    }
  }
  int port() const { return port_; }
  void Freeze() { frozen_ = true; }

 private:
  void Run() {
    pollfd l{listen_fd_, POLLIN, 0};
    while (!stop_ && poll(&l, 1, 100) <= 0) {
    }
    if (stop_) return;
    client_fd_ = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    server_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (connect(server_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return;
    char buf[16384];
    while (!stop_) {
      if (frozen_) {  // hold both sockets, move nothing
        usleep(50 * 1000);
        continue;
      }
      pollfd fds[2] = {{client_fd_, POLLIN, 0}, {server_fd_, POLLIN, 0}};
      if (poll(fds, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
        const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) return;
        const int to = i == 0 ? server_fd_ : client_fd_;
        for (ssize_t off = 0; off < n;) {
          const ssize_t w = write(to, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) return;
          off += w;
        }
      }
    }
  }

  const int upstream_port_;
  int listen_fd_ = -1;
  int client_fd_ = -1;
  int server_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> frozen_{false};
  std::thread thread_;
};

int PortOf(const std::string& target) { return std::stoi(target.substr(target.rfind(':') + 1)); }

class HealthStreamE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(agent_.Start(), IsOk()); }
  void Ping(uint64_t seq) {
    auto ch = agent_.Channel();
    ASSERT_THAT(ch, IsOk());
    ASSERT_THAT(ExecuteCommand(ch->get(), agent_.Ping(seq), absl::Seconds(10)).status, IsOk());
  }
  AgentProcess agent_;
};

// A change is pushed at once, not at the next 10 s heartbeat.
TEST_F(HealthStreamE2eTest, ChangeIsPushedAtOnce) {
  auto ch = agent_.Channel();
  ASSERT_THAT(ch, IsOk());
  auto stub = nodeward::v1::NodeAgent::NewStub(*ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  nodeward::v1::WatchHealthRequest req;
  auto reader = stub->WatchHealth(&ctx, req);
  HealthReport r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.report_number(), 1u);
  EXPECT_TRUE(r.accepting_commands());
  EXPECT_EQ(r.commands().health_streams(), 1u);
  const absl::Time sent = absl::Now();
  Ping(1);
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.commands().applied(), 1u);
  EXPECT_LT(absl::Now() - sent, absl::Seconds(5)) << "waited for a heartbeat, not a push";
  ctx.TryCancel();
  (void)reader->Finish();
}

// With min_interval_ms, reports are at least that far apart (the agent's own
// report times) and a burst of commands is coalesced: ten Pings in a row
// give at most a few reports, the last of which has all ten.
TEST_F(HealthStreamE2eTest, MinIntervalSpacesAndCoalescesReports) {
  auto ch = agent_.Channel();
  ASSERT_THAT(ch, IsOk());
  auto stub = nodeward::v1::NodeAgent::NewStub(*ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  nodeward::v1::WatchHealthRequest req;
  req.set_min_interval_ms(700);
  auto reader = stub->WatchHealth(&ctx, req);
  HealthReport r;
  ASSERT_TRUE(reader->Read(&r));
  std::vector<absl::Time> times = {FromTimestamp(r.time())};
  std::thread burst([&] {
    for (uint64_t seq = 1; seq <= 10; ++seq) Ping(seq);
  });
  int reports = 0;
  while (reader->Read(&r)) {
    ++reports;
    times.push_back(FromTimestamp(r.time()));
    if (r.commands().applied() == 10) break;
  }
  burst.join();
  EXPECT_EQ(r.commands().applied(), 10u);
  for (size_t i = 1; i < times.size(); ++i) {
    EXPECT_GE(times[i] - times[i - 1], absl::Milliseconds(690)) << "report " << i + 1;
  }
  // Ten changes; without coalescing there would be ten reports.
  EXPECT_LT(reports, 10);
  ctx.TryCancel();
  (void)reader->Finish();
}

// A stream whose orchestrator vanished (its packets stop, its socket stays
// open) is noticed by keepalive within 30 s and ended: the agent holds no
// stream for it.
TEST_F(HealthStreamE2eTest, DeadOrchestratorStreamIsNoticedWithin30s) {
  FreezableProxy proxy(PortOf(agent_.target()));
  ClientTls tls = agent_.Tls();
  tls.server_name = "localhost";
  auto ch = MakeAgentChannel(absl::StrCat("127.0.0.1:", proxy.port()), tls);
  ASSERT_THAT(ch, IsOk());
  auto stub = nodeward::v1::NodeAgent::NewStub(*ch);
  grpc::ClientContext ctx;
  nodeward::v1::WatchHealthRequest req;
  auto reader = stub->WatchHealth(&ctx, req);
  HealthReport r;
  ASSERT_TRUE(reader->Read(&r));
  ASSERT_EQ(r.commands().health_streams(), 1u);
  proxy.Freeze();
  const absl::Time frozen = absl::Now();
  uint32_t streams = 1;
  while (absl::Now() - frozen < absl::Seconds(45)) {
    absl::SleepFor(absl::Milliseconds(500));
    absl::StatusOr<nodeward::v1::StatusReport> st = agent_.Status();
    if (!st.ok()) continue;
    streams = st->health().commands().health_streams();
    if (streams == 0) break;
  }
  const absl::Duration noticed = absl::Now() - frozen;
  EXPECT_EQ(streams, 0u) << "the stream outlived its orchestrator by 45 s";
  // 15 s keepalive time + 10 s timeout, and our 0.5 s polling: the promise
  // is 30 s.
  EXPECT_LE(noticed, absl::Seconds(30)) << absl::FormatDuration(noticed);
  std::cout << "dead stream noticed after " << absl::FormatDuration(noticed) << "\n";
  ctx.TryCancel();
  (void)reader->Finish();
}

grpc::health::v1::HealthCheckResponse::ServingStatus Check(const std::shared_ptr<grpc::Channel>& ch,
                                                           const std::string& service,
                                                           grpc::StatusCode* code) {
  auto stub = grpc::health::v1::Health::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  *code = stub->Check(&ctx, req, &resp).error_code();
  return resp.status();
}

TEST_F(HealthStreamE2eTest, GrpcHealthAnswersForBothNames) {
  auto ch = agent_.Channel();
  ASSERT_THAT(ch, IsOk());
  grpc::StatusCode code;
  for (const char* name : {"", "nodeward.v1.NodeAgent"}) {
    EXPECT_EQ(Check(*ch, name, &code), grpc::health::v1::HealthCheckResponse::SERVING) << name;
    EXPECT_EQ(code, grpc::StatusCode::OK) << name;
  }
  (void)Check(*ch, "nodeward.v1.Other", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);
}

// Not accepting commands (the state dir cannot be written): both names say
// NOT_SERVING, with the same truth as the report.
TEST(HealthStreamE2eNotAcceptingTest, GrpcHealthSaysNotServing) {
  AgentProcess agent;
  ASSERT_THAT(agent.Start(/*file_size_limit=*/1), IsOk());
  absl::StatusOr<nodeward::v1::StatusReport> st = agent.Status();
  ASSERT_THAT(st, IsOk());
  ASSERT_FALSE(st->health().accepting_commands());
  auto ch = agent.Channel();
  ASSERT_THAT(ch, IsOk());
  grpc::StatusCode code;
  for (const char* name : {"", "nodeward.v1.NodeAgent"}) {
    EXPECT_EQ(Check(*ch, name, &code), grpc::health::v1::HealthCheckResponse::NOT_SERVING)
        << name;
  }
}

}  // namespace
}  // namespace nodeward::testing
