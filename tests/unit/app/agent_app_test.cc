// Startup is an ordered list of steps; a failing step stops startup with its
// name in the error, READY=1 is never sent, and teardown still runs.
#include "agent/app/agent_app.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_file_system.h"
#include "tests/fakes/fake_service_notifier.h"

namespace nodeward {
namespace {

struct Harness {
  platform::FakeFileSystem* fs;
  platform::FakeServiceNotifier* notifier;
  std::unique_ptr<AgentApp> app;
};

Harness Make(std::function<void(platform::FakeFileSystem*)> setup) {
  auto fs = std::make_unique<platform::FakeFileSystem>();
  auto notifier = std::make_unique<platform::FakeServiceNotifier>();
  setup(fs.get());
  Harness h{fs.get(), notifier.get(), nullptr};
  AgentDeps deps;
  deps.clock = std::make_unique<platform::FakeClock>();
  deps.fs = std::move(fs);
  deps.notifier = std::move(notifier);
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
    fs->SetContent("/etc/agent.json", R"({"node_id": "n", "listen_address": "127.0.0.1:0",
      "boot_id_file": "/boot_id"})");
  });
  absl::Status s = h.app->Start();
  EXPECT_TRUE(absl::StrContains(s.message(), "startup step 'read identity'")) << s;
  EXPECT_FALSE(SentReady(h.notifier));
}

TEST(AgentAppTest, LaterStepFailureStillRunsTeardown) {
  auto h = Make([](platform::FakeFileSystem* fs) {
    fs->SetContent("/etc/agent.json", R"({"node_id": "n", "listen_address": "127.0.0.1:0",
      "boot_id_file": "/boot_id", "state_dir": "/state",
      "status_socket": {"path": "/nonexistent-dir/nodeward-test/status.sock"}})");
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

}  // namespace
}  // namespace nodeward
