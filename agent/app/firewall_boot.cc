#include "agent/app/firewall_boot.h"

#include "absl/strings/str_cat.h"
#include "agent/app/config.h"
#include "agent/common/status_macros.h"
#include "agent/firewall/firewall_reconciler.h"
#include "platform/clock.h"
#include "nodeward/v1/state.pb.h"

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
    bool* config_error, const std::string& fallback_state_path) {
  *config_error = false;
  absl::StatusOr<nodeward::v1::AgentConfig> loaded = LoadConfig(fs, config_path);
  if (!loaded.ok()) {
    *config_error = true;
    // The config is broken, but the state the agent last wrote names the
    // management access and table it ran under: restore that, so the host
    // is not left open (the unit still fails: the config needs fixing).
    absl::StatusOr<std::string> raw = fallback_state_path.empty()
                                          ? absl::NotFoundError("no fallback")
                                          : fs->ReadFile(fallback_state_path);
    nodeward::v1::FirewallState state;
    if (!raw.ok() || !state.ParseFromString(*raw) || state.table().empty() ||
        state.management_cidrs().empty()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat(loaded.status().message(), "; no firewall state with "
                                       "management access at ", fallback_state_path,
                                       ": nothing restored"));
    }
    firewall::ManagementAccess mgmt;
    for (const std::string& c : state.management_cidrs()) {
      absl::StatusOr<firewall::Cidr> cidr = firewall::ParseCidr(c);
      if (!cidr.ok()) return absl::DataLossError("fallback firewall state: " + c);
      mgmt.cidrs.push_back(*cidr);
    }
    for (uint32_t p : state.management_ports()) mgmt.tcp_ports.push_back(static_cast<uint16_t>(p));
    platform::PacketFilterPtr filter = make_filter(state.table());
    platform::SystemClock clock;
    firewall::FirewallReconciler reconciler(filter.get(), fs, &clock, fallback_state_path,
                                            std::move(mgmt));
    reconciler.set_table(state.table());
    absl::Status s = reconciler.Restore();
    return absl::Status(
        loaded.status().code(),
        absl::StrCat(loaded.status().message(), "; ",
                     s.ok() ? absl::StrCat("restored generation ", reconciler.status().generation,
                                           " with the management access recorded in ",
                                           fallback_state_path)
                            : absl::StrCat("restoring ", fallback_state_path, " failed too: ",
                                           s.message())));
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
  reconciler.set_table(config.firewall().table());
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
