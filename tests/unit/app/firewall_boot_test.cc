#include "agent/app/firewall_boot.h"

#include "gtest/gtest.h"
#include "nodeward/v1/state.pb.h"
#include "tests/common/status_matchers.h"
#include "tests/fakes/fake_file_system.h"
#include "tests/fakes/fake_packet_filter.h"

namespace nodeward {
namespace {

using testing::IsOk;

constexpr char kConfig[] = R"({
  "node_id": "n1", "listen_address": "127.0.0.1:7443", "state_dir": "/state",
  "tls": {"server_cert_file": "/c", "server_key_file": "/k", "client_ca_file": "/ca"},
  "firewall": {"enabled": true, "management_cidrs": ["10.0.2.2/32"], "management_ports": [7443]}
})";

// Each boot makes its own filter object; all of them act on one "kernel".
class Forwarding final : public platform::PacketFilter {
 public:
  explicit Forwarding(platform::FakePacketFilter* f) : f_(f) {}
  absl::StatusOr<platform::KernelTable> Read() override { return f_->Read(); }
  absl::StatusOr<uint32_t> Commit(const platform::FilterChange& c, uint32_t genid) override {
    return f_->Commit(c, genid);
  }
  absl::StatusOr<std::unique_ptr<platform::FilterWatch>> Watch() override { return f_->Watch(); }
  absl::StatusOr<std::vector<std::string>> ForeignDrops() override { return f_->ForeignDrops(); }

 private:
  platform::FakePacketFilter* f_;
};

class FirewallBootTest : public ::testing::Test {
 protected:
  absl::StatusOr<FirewallBootResult> Boot(bool* config_error) {
    return RestoreFirewallOnly(
        &fs_, "/cfg",
        [this](const std::string& table) -> platform::PacketFilterPtr {
          tables_.push_back(table);
          return std::make_unique<Forwarding>(&filter_);
        },
        config_error, "/state/firewall.pb");
  }
  platform::FakeFileSystem fs_;
  platform::FakePacketFilter filter_;
  std::vector<std::string> tables_;
};

TEST_F(FirewallBootTest, GoodConfigRecordsManagementAccessForLater) {
  fs_.SetContent("/cfg", kConfig);
  bool config_error = true;
  ASSERT_THAT(Boot(&config_error), IsOk());
  EXPECT_FALSE(config_error);
  nodeward::v1::FirewallState st;
  ASSERT_TRUE(st.ParseFromString(fs_.Content("/state/firewall.pb")));
  EXPECT_EQ(st.table(), "nodeward");
  ASSERT_EQ(st.management_cidrs_size(), 1);
  EXPECT_EQ(st.management_cidrs(0), "10.0.2.2/32");
  ASSERT_EQ(st.management_ports_size(), 1);
  EXPECT_EQ(st.management_ports(0), 7443u);
}

// A config that no longer parses: the host is not left open. The firewall
// recorded under the last good config is put back (management access
// included) and the error says so; the caller still exits 78.
TEST_F(FirewallBootTest, BrokenConfigRestoresTheRecordedState) {
  fs_.SetContent("/cfg", kConfig);
  bool config_error = false;
  ASSERT_THAT(Boot(&config_error), IsOk());
  // A reboot: nftables tables do not survive it.
  filter_.ForeignChange([](platform::KernelTable* t) {
    t->exists = false;
    t->structure_ok = false;
    t->ruleset = {};
  });
  ASSERT_FALSE(filter_.table().has_value());
  fs_.SetContent("/cfg", R"({"node_idd": "n1"})");
  absl::StatusOr<FirewallBootResult> r = Boot(&config_error);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(config_error);
  EXPECT_NE(r.status().message().find("restored generation 0"), std::string::npos)
      << r.status();
  ASSERT_TRUE(filter_.table().has_value());
  EXPECT_EQ(tables_.back(), "nodeward");
}

TEST_F(FirewallBootTest, BrokenConfigWithoutStateChangesNothing) {
  fs_.SetContent("/cfg", "{not json");
  bool config_error = false;
  absl::StatusOr<FirewallBootResult> r = Boot(&config_error);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(config_error);
  EXPECT_NE(r.status().message().find("nothing restored"), std::string::npos) << r.status();
  EXPECT_FALSE(filter_.table().has_value());
}

}  // namespace
}  // namespace nodeward
