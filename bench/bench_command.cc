// bench-command: signed Ping round trips over mTLS against the unsigned
// grpc.health.v1.Health/Check on the same server, side by side in one run.
// A program, not a test: it prints figures and never asserts on time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>
#include <map>

#include "absl/synchronization/mutex.h"

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "nodeward/v1/agent.grpc.pb.h"
#include "tools/nodewardctl/client.h"

ABSL_FLAG(std::string, target, "", "agent host:port");
ABSL_FLAG(std::string, ca, "", "CA file");
ABSL_FLAG(std::string, cert, "", "client certificate");
ABSL_FLAG(std::string, key, "", "client key");
ABSL_FLAG(std::string, signing_key, "", "Ed25519 signing key (PEM)");
ABSL_FLAG(std::string, node_id, "", "agent node id");
ABSL_FLAG(std::string, boot_id_file, "/proc/sys/kernel/random/boot_id", "agent boot id file");
ABSL_FLAG(int, calls, 3000, "sequential calls per kind for latency");
ABSL_FLAG(int, seconds, 5, "seconds per kind for the 16-caller throughput run");
ABSL_FLAG(int, callers, 16, "concurrent callers");

namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

class Bench {
 public:
  Bench(std::shared_ptr<grpc::Channel> channel, nodeward::Ed25519PrivateKey key, std::string node,
        std::string boot)
      : agent_(nodeward::v1::NodeAgent::NewStub(channel)),
        health_(grpc::health::v1::Health::NewStub(channel)),
        key_(std::move(key)),
        node_(std::move(node)),
        boot_(std::move(boot)) {}

  // Signed before timing: the figures are the agent's pipeline plus the RPC.
  std::vector<nodeward::v1::SignedCommand> Presign(size_t n) {
    std::vector<nodeward::v1::SignedCommand> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      nodeward::v1::Command c;
      c.set_node_id(node_);
      c.set_boot_id(boot_);
      c.set_sequence(++seq_);
      c.mutable_ping();
      nodeward::FillCommandDefaults(&c, absl::Now(), absl::Minutes(10));
      out.push_back(nodeward::SignCommand(c, {&key_}).value());
    }
    return out;
  }
  bool Ping(const nodeward::v1::SignedCommand& env) {
    grpc::ClientContext ctx;
    nodeward::v1::CommandResult r;
    grpc::Status s = agent_->Execute(&ctx, env, &r);
    if (!s.ok()) {
      auto md = ctx.GetServerTrailingMetadata();
      auto it = md.find("nodeward-reason");
      std::string why = it == md.end() ? "-" : std::string(it->second.data(), it->second.size());
      absl::MutexLock lock(&mu_);
      if (++failures_[why] == 1) {
        std::fprintf(stderr, "bench-command: first failure %s: %s\n", why.c_str(),
                     s.error_message().c_str());
      }
    }
    return s.ok();
  }
  bool Check() {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    return health_->Check(&ctx, req, &resp).ok();
  }

 private:
  std::unique_ptr<nodeward::v1::NodeAgent::Stub> agent_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  nodeward::Ed25519PrivateKey key_;
  std::string node_, boot_;
  uint64_t seq_ = 0;
  absl::Mutex mu_;
  std::map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
};

template <typename F>
std::vector<double> Latencies(int n, F call, int* failures) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (!call(i)) ++*failures;
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return us;
}

template <typename F>
double Throughput(int callers, int seconds, F call, std::atomic<int>* failures) {
  std::atomic<long> done{0};
  auto until = Clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&] {
      while (Clock::now() < until) {
        if (!call()) ++*failures;
        ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  return static_cast<double>(done.load()) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto channel = nodeward::MakeAgentChannel(
      absl::GetFlag(FLAGS_target),
      {absl::GetFlag(FLAGS_ca), absl::GetFlag(FLAGS_cert), absl::GetFlag(FLAGS_key), ""});
  auto key = nodeward::Ed25519PrivateKey::FromPemFile(absl::GetFlag(FLAGS_signing_key));
  if (!channel.ok() || !key.ok()) {
    std::fprintf(stderr, "bench-command: bad flags: %s %s\n",
                 std::string(channel.status().message()).c_str(),
                 std::string(key.status().message()).c_str());
    return 2;
  }
  std::ifstream boot_in(absl::GetFlag(FLAGS_boot_id_file));
  std::stringstream boot;
  boot << boot_in.rdbuf();
  Bench bench(*channel, std::move(key).value(), absl::GetFlag(FLAGS_node_id),
              std::string(absl::StripAsciiWhitespace(boot.str())));
  const int calls = absl::GetFlag(FLAGS_calls);
  const int callers = absl::GetFlag(FLAGS_callers);
  const int seconds = absl::GetFlag(FLAGS_seconds);

  // Warm up both paths (TLS session, HTTP/2 streams, page cache).
  auto warm = bench.Presign(200);
  for (auto& e : warm) bench.Ping(e);
  for (int i = 0; i < 200; ++i) bench.Check();

  int ping_fail = 0, check_fail = 0;
  auto envs = bench.Presign(static_cast<size_t>(calls));
  auto check_us = Latencies(calls, [&](int) { return bench.Check(); }, &check_fail);
  auto ping_us = Latencies(calls, [&](int i) { return bench.Ping(envs[static_cast<size_t>(i)]); },
                           &ping_fail);

  // Throughput: callers share one pre-signed queue in sequence order; the
  // agent runs with a sequence window so near-simultaneous arrivals that
  // swap order are still accepted exactly once.
  auto queue = bench.Presign(static_cast<size_t>(seconds) * 20000);
  std::atomic<size_t> next{0};
  std::atomic<int> tp_ping_fail{0}, tp_check_fail{0};
  double check_tp = Throughput(callers, seconds, [&] { return bench.Check(); }, &tp_check_fail);
  double ping_tp = Throughput(callers, seconds, [&] {
    size_t i = next++;
    if (i >= queue.size()) return false;
    return bench.Ping(queue[i]);
  }, &tp_ping_fail);

  const double p50 = Percentile(ping_us, 0.50), p99 = Percentile(ping_us, 0.99);
  const double c50 = Percentile(check_us, 0.50), c99 = Percentile(check_us, 0.99);
  std::printf("one caller, %d calls each:\n", calls);
  std::printf("  signed Ping     p50 %8.1f us  p99 %8.1f us  failures %d\n", p50, p99, ping_fail);
  std::printf("  Health/Check    p50 %8.1f us  p99 %8.1f us  failures %d\n", c50, c99, check_fail);
  std::printf("%d callers, %d s each:\n", callers, seconds);
  std::printf("  signed Ping     %8.0f calls/s  failures %d\n", ping_tp, tp_ping_fail.load());
  std::printf("  Health/Check    %8.0f calls/s  failures %d\n", check_tp, tp_check_fail.load());
  std::printf("bench-command p50_us=%.0f p99_us=%.0f ratio_p50_vs_unsigned=%.2f "
              "throughput_ratio_16_vs_unsigned=%.2f\n",
              p50, p99, p50 / c50, ping_tp / check_tp);
  return ping_fail + tp_ping_fail.load() == 0 ? 0 : 1;
}
