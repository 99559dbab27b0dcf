#include "agent/app/config.h"

#include "gtest/gtest.h"
#include "tests/common/command_factory.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_file_system.h"

namespace nodeward {
namespace {

using testing::IsOk;
using testing::StatusIs;

constexpr char kMinimal[] = R"({
  "node_id": "n1", "listen_address": "127.0.0.1:0",
  "tls": {"server_cert_file": "/c", "server_key_file": "/k", "client_ca_file": "/ca"}
})";

TEST(ConfigTest, FillsDefaults) {
  platform::FakeFileSystem fs;
  fs.SetContent("/cfg", kMinimal);
  auto c = LoadConfig(&fs, "/cfg");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->state_dir(), "/var/lib/nodeward");
  EXPECT_EQ(c->audit_file(), "/var/lib/nodeward/audit.jsonl");
  EXPECT_EQ(c->status_socket().path(), "/run/nodeward/status.sock");
  EXPECT_EQ(c->limits().max_envelope_bytes(), 65536u);
  EXPECT_EQ(c->limits().clock_skew_seconds(), 300u);
  EXPECT_EQ(c->boot_id_file(), "/proc/sys/kernel/random/boot_id");
}

TEST(ConfigTest, RejectsUnknownFieldsAndMissingRequired) {
  platform::FakeFileSystem fs;
  fs.SetContent("/cfg", R"({"node_id": "n1", "listen_address": "x:1", "bogus": 1})");
  EXPECT_THAT(LoadConfig(&fs, "/cfg"), StatusIs(absl::StatusCode::kInvalidArgument));
  fs.SetContent("/cfg", R"({"listen_address": "x:1"})");
  EXPECT_THAT(LoadConfig(&fs, "/cfg"), StatusIs(absl::StatusCode::kInvalidArgument));
  fs.SetContent("/cfg", "{not json");
  EXPECT_THAT(LoadConfig(&fs, "/cfg"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(LoadConfig(&fs, "/missing"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(ConfigTest, RejectsBadTrust) {
  platform::FakeFileSystem fs;
  fs.SetContent("/cfg", R"({"node_id": "n1", "listen_address": "x:1",
    "trust": {"keys": [{"public_key": "AAAA", "roles": ["orchestrator"]}]}})");
  EXPECT_THAT(LoadConfig(&fs, "/cfg"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ConfigTest, VolumesNeedAllowedRootsThatAreNormalisedPaths) {
  platform::FakeFileSystem fs;
  auto with = [&](const std::string& volumes) {
    std::string cfg = kMinimal;
    cfg.insert(cfg.rfind('}'), ", \"volumes\": " + volumes);
    fs.SetContent("/cfg", cfg);
    return LoadConfig(&fs, "/cfg");
  };
  EXPECT_THAT(with(R"({"enabled": true})"), StatusIs(absl::StatusCode::kInvalidArgument));
  for (const char* bad : {"relative", "/", "/srv/", "/srv/../etc", "//srv", "/srv/./x"}) {
    EXPECT_THAT(with(std::string(R"({"enabled": true, "allowed_mount_roots": [")") + bad + "\"]}"),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  auto ok = with(R"({"enabled": true, "allowed_mount_roots": ["/srv/nodeward"]})");
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->volumes().by_id_dir(), "/dev/disk/by-id");
  // Disabled volumes need nothing.
  EXPECT_THAT(with(R"({"enabled": false})"), IsOk());
}

}  // namespace
}  // namespace nodeward
