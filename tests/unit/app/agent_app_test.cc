// Startup is an ordered list of steps; a failing step stops startup with its
// name in the error, READY=1 is never sent, and teardown still runs.
#include "agent/app/agent_app.h"

#include <stdlib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_file_system.h"
#include "tests/fakes/fake_packet_filter.h"
#include "tests/fakes/fake_service_notifier.h"
#include "tools/nodewardctl/dev_pki.h"

namespace nodeward {
namespace {

struct Harness {
  platform::FakeFileSystem* fs;
  platform::FakeServiceNotifier* notifier;
  std::unique_ptr<AgentApp> app;
};

// TLS material is read from real files (gRPC reads them): one dev PKI per
// test binary in a temp dir.
const std::string& PkiDir() {
  static const std::string* dir = [] {
    char tmpl[] = "/tmp/nw-app-pki.XXXXXX";
    auto* d = new std::string(mkdtemp(tmpl));
    DevPkiOptions o;
    o.out_dir = *d;
    EXPECT_THAT(GenerateDevPki(o), testing::IsOk());
    return d;
  }();
  return *dir;
}

std::string TlsJson(const std::string& key_file) {
  return absl::StrCat(R"("tls": {"server_cert_file": ")", PkiDir(), R"(/server.pem",
      "server_key_file": ")", key_file, R"(", "client_ca_file": ")", PkiDir(), R"(/ca.pem"})");
}

// Steps the clock when the test says so.
class FakeClockSteps final : public platform::ClockStepWatcher {
 public:
  absl::Status Start(std::function<void(absl::Duration)> on_step) override {
    *on_step_ = std::move(on_step);
    return absl::OkStatus();
  }
  explicit FakeClockSteps(std::function<void(absl::Duration)>* on_step) : on_step_(on_step) {}

 private:
  std::function<void(absl::Duration)>* on_step_;
};

Harness Make(std::function<void(platform::FakeFileSystem*)> setup, int* filters_made = nullptr,
             std::function<void(absl::Duration)>* clock_steps = nullptr) {
  auto fs = std::make_unique<platform::FakeFileSystem>();
  auto notifier = std::make_unique<platform::FakeServiceNotifier>();
  setup(fs.get());
  Harness h{fs.get(), notifier.get(), nullptr};
  AgentDeps deps;
  deps.clock = std::make_unique<platform::FakeClock>();
  deps.fs = std::move(fs);
  deps.notifier = std::move(notifier);
  deps.make_packet_filter = [filters_made](const std::string&) -> platform::PacketFilterPtr {
    if (filters_made != nullptr) ++*filters_made;
    return std::make_unique<platform::FakePacketFilter>();
  };
  if (clock_steps != nullptr) deps.clock_steps = std::make_unique<FakeClockSteps>(clock_steps);
  h.app = std::make_unique<AgentApp>(std::move(deps), "/etc/agent.json");
  return h;
}

bool SentReady(platform::FakeServiceNotifier* n) {
  for (const auto& m : n->messages()) {
    if (absl::StrContains(m, "READY=1")) return true;
  }
  return false;
}

TEST(AgentAppTest, MissingConfigStopsAtFirstStep) {
  auto h = Make([](platform::FakeFileSystem*) {});
  absl::Status s = h.app->Start();
  EXPECT_THAT(s, testing::StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(absl::StrContains(s.message(), "startup step 'load config'")) << s;
  EXPECT_FALSE(SentReady(h.notifier));
  h.app->Stop();
}

TEST(AgentAppTest, MissingBootIdStopsAtIdentityStep) {
  auto h = Make([](platform::FakeFileSystem* fs) {
    fs->SetContent("/etc/agent.json", absl::StrCat(R"({"node_id": "n", "listen_address": "127.0.0.1:0",
      "boot_id_file": "/boot_id", )", TlsJson(PkiDir() + "/server.key"), "}"));
  });
  absl::Status s = h.app->Start();
  EXPECT_TRUE(absl::StrContains(s.message(), "startup step 'read identity'")) << s;
  EXPECT_FALSE(SentReady(h.notifier));
}

// Security rule 8: with a TLS key missing (or not matching the certificate)
// the agent stops before any step that touches the system: on fcf3c42 it
// rewrote the nft table first ("restore firewall" ran before "start gRPC").
TEST(AgentAppTest, BadTlsMaterialStopsBeforeAnySideEffect) {
  for (const std::string& key : {PkiDir() + "/missing.key", PkiDir() + "/client.key"}) {
    int made = 0;
    auto h = Make(
        [&](platform::FakeFileSystem* fs) {
          fs->SetContent("/etc/agent.json", absl::StrCat(R"({"node_id": "n",
            "listen_address": "127.0.0.1:0", "boot_id_file": "/boot_id", "state_dir": "/state",
            "firewall": {"enabled": true, "management_cidrs": ["10.0.0.0/8"],
                         "management_ports": [7443]}, )", TlsJson(key), "}"));
          fs->SetContent("/boot_id", "abc\n");
        },
        &made);
    absl::Status s = h.app->Start();
    EXPECT_TRUE(absl::StrContains(s.message(), "startup step 'check TLS material'")) << s;
    EXPECT_EQ(made, 0) << key;
    EXPECT_FALSE(h.fs->Exists("/state")) << "state dir touched for " << key;
    EXPECT_FALSE(SentReady(h.notifier));
    h.app->Stop();
  }
}

TEST(AgentAppTest, LaterStepFailureStillRunsTeardown) {
  auto h = Make([](platform::FakeFileSystem* fs) {
    fs->SetContent("/etc/agent.json", absl::StrCat(R"({"node_id": "n", "listen_address": "127.0.0.1:0",
      "boot_id_file": "/boot_id", "state_dir": "/state", )", TlsJson(PkiDir() + "/server.key"), R"(,
      "status_socket": {"path": "/nonexistent-dir/nodeward-test/status.sock"}})"));
    fs->SetContent("/boot_id", "abc\n");
  });
  absl::Status s = h.app->Start();
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(SentReady(h.notifier));
  h.app->Stop();
  auto msgs = h.notifier->messages();
  ASSERT_FALSE(msgs.empty());
  EXPECT_TRUE(absl::StrContains(msgs.back(), "STOPPING=1"));
}

// Issue 15 point 7: a step of the wall clock (a VM resumed past a
// certificate's not_after, the clock set back) is audited and shown in
// health at once, and the report is recomputed from the new time.
TEST(AgentAppTest, AClockStepIsAuditedAndShownInHealth) {
  std::function<void(absl::Duration)> step;
  char sock[] = "/tmp/nw-app-sock.XXXXXX";
  ASSERT_NE(mkdtemp(sock), nullptr);
  auto h = Make(
      [&](platform::FakeFileSystem* fs) {
        fs->SetContent("/etc/agent.json", absl::StrCat(R"({"node_id": "n",
          "listen_address": "127.0.0.1:0", "boot_id_file": "/boot_id", "state_dir": "/state", )",
          TlsJson(PkiDir() + "/server.key"), R"(, "status_socket": {"path": ")", sock,
          R"(/status.sock"}})"));
        fs->SetContent("/boot_id", "abc\n");
      },
      nullptr, &step);
  ASSERT_THAT(h.app->Start(), testing::IsOk());
  ASSERT_TRUE(step) << "the watcher was not started";
  auto has_step = [](const nodeward::v1::HealthReport& r) {
    for (const auto& c : r.conditions()) {
      if (c.type() == nodeward::v1::Condition::CLOCK_STEPPED) return true;
    }
    return false;
  };
  EXPECT_FALSE(has_step(h.app->Health()));
  step(absl::Hours(2));
  const nodeward::v1::HealthReport r = h.app->Health();
  EXPECT_TRUE(has_step(r));
  EXPECT_EQ(r.host().clock_steps(), 1u);
  EXPECT_DOUBLE_EQ(r.host().clock_step_seconds(), 7200.0);
  EXPECT_EQ(r.state(), nodeward::v1::HealthReport::SERVING) << "INFO only";
  EXPECT_TRUE(absl::StrContains(h.fs->Content("/state/audit.jsonl"), "clock_stepped"));
  h.app->Stop();
  std::string cleanup = absl::StrCat("rm -rf ", sock);
  ASSERT_EQ(system(cleanup.c_str()), 0);
}

}  // namespace
}  // namespace nodeward
