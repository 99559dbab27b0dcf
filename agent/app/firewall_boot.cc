#include "agent/app/firewall_boot.h"

#include "absl/strings/str_cat.h"
#include "agent/app/config.h"
#include "agent/common/status_macros.h"
#include "agent/firewall/firewall_reconciler.h"
#include "platform/clock.h"

namespace nodeward {

firewall::ManagementAccess ManagementFrom(const nodeward::v1::AgentConfig& config) {
  firewall::ManagementAccess mgmt;
  for (const auto& m : config.firewall().management_cidrs()) {
    mgmt.cidrs.push_back(firewall::ParseCidr(m).value());  // checked by LoadConfig
  }
  for (uint32_t p : config.firewall().management_ports()) {
    mgmt.tcp_ports.push_back(static_cast<uint16_t>(p));
  }
  return mgmt;
}

absl::StatusOr<FirewallBootResult> RestoreFirewallOnly(
    platform::FileSystem* fs, const std::string& config_path,
    const std::function<platform::PacketFilterPtr(const std::string& table)>& make_filter,
    bool* config_error) {
  *config_error = false;
  absl::StatusOr<nodeward::v1::AgentConfig> loaded = LoadConfig(fs, config_path);
  if (!loaded.ok()) {
    *config_error = true;
    return loaded.status();
  }
  const nodeward::v1::AgentConfig& config = *loaded;
  FirewallBootResult out;
  out.enabled = config.firewall().enabled();
  if (!out.enabled) {
    out.summary = "the firewall is disabled in the config: nothing to restore";
    return out;
  }
  platform::PacketFilterPtr filter = make_filter(config.firewall().table());
  platform::SystemClock clock;
  firewall::FirewallReconciler reconciler(filter.get(), fs, &clock,
                                          config.state_dir() + "/firewall.pb",
                                          ManagementFrom(config));
  absl::Status s = reconciler.Restore();
  if (absl::IsDataLoss(s)) {
    out.state_lost = true;
    out.summary = absl::StrCat(s.message(), " (management-only baseline in force)");
    return out;
  }
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("restore the firewall: ", s.message()));
  }
  const firewall::FirewallStatus st = reconciler.status();
  out.summary = st.generation == 0
                    ? std::string("management-only baseline in force (no confirmed state yet)")
                    : absl::StrCat("generation ", st.generation, " in force (",
                                   st.ipv4_intervals, " IPv4 and ", st.ipv6_intervals,
                                   " IPv6 intervals)");
  return out;
}

}  // namespace nodeward
