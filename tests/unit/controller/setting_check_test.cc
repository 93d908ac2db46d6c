// Proves the controller checks settings against the catalog each host's agent publishes, not a
// copy of its own: a value outside that host's range, or a key that agent does not know, is an
// error naming settings.HOST.KEY, the value and the range; each error once over a sweep; a host
// whose agent publishes no catalog is left to the agent. The catalogs here are test data (two
// hosts with different ranges for one key), so the outcome cannot come from a built-in list.
#include "controller/run/setting_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace synq::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

HostHandle Host(const std::string& name, std::vector<std::tuple<std::string, int64_t, int64_t>> c) {
  HostHandle h;
  h.name = name;
  for (const auto& [key, min, max] : c) {
    auto* r = h.info.add_setting_catalog();
    r->set_key(key);
    r->set_min(min);
    r->set_max(max);
  }
  return h;
}

RunPlan Plan(std::map<std::string, std::map<std::string, int64_t>> settings) {
  RunPlan p;
  p.scenario.settings = std::move(settings);
  return p;
}

TEST(SettingCheck, ValueOutsideThisHostsRangeNamesPathValueAndRange) {
  std::vector<HostHandle> hosts;
  hosts.push_back(Host("a", {{"net.ipv4.tcp_syncookies", 0, 2}}));
  hosts.push_back(Host("b", {{"net.ipv4.tcp_syncookies", 0, 5}}));
  const std::vector<RunPlan> plans = {
      Plan({{"a", {{"net.ipv4.tcp_syncookies", 3}}}, {"b", {{"net.ipv4.tcp_syncookies", 3}}}})};
  EXPECT_THAT(CheckSettingsAgainstCatalogs(plans, hosts),
              ElementsAre("settings.a.net.ipv4.tcp_syncookies: 3 is out of range [0, 2] on this "
                          "host's agent"));
}

TEST(SettingCheck, UnknownKeyListsTheAgentsKeys) {
  std::vector<HostHandle> hosts;
  hosts.push_back(Host("a", {{"net.core.somaxconn", 0, 10}, {"net.ipv4.tcp_syncookies", 0, 2}}));
  EXPECT_THAT(CheckSettingsAgainstCatalogs({Plan({{"a", {{"net.foo", 1}}}})}, hosts),
              ElementsAre("settings.a.net.foo: not a setting this host's agent may change; "
                          "allowed: net.core.somaxconn, net.ipv4.tcp_syncookies"));
}

TEST(SettingCheck, EachErrorOnceOverASweepAndBoundsAreInclusive) {
  std::vector<HostHandle> hosts;
  hosts.push_back(Host("a", {{"net.ipv4.tcp_syn_retries", 1, 127}}));
  const std::vector<RunPlan> plans = {Plan({{"a", {{"net.ipv4.tcp_syn_retries", 0}}}}),
                                      Plan({{"a", {{"net.ipv4.tcp_syn_retries", 0}}}}),
                                      Plan({{"a", {{"net.ipv4.tcp_syn_retries", 1}}}}),
                                      Plan({{"a", {{"net.ipv4.tcp_syn_retries", 127}}}}),
                                      Plan({{"a", {{"net.ipv4.tcp_syn_retries", 128}}}})};
  EXPECT_THAT(CheckSettingsAgainstCatalogs(plans, hosts),
              ElementsAre("settings.a.net.ipv4.tcp_syn_retries: 0 is out of range [1, 127] on "
                          "this host's agent",
                          "settings.a.net.ipv4.tcp_syn_retries: 128 is out of range [1, 127] on "
                          "this host's agent"));
}

TEST(SettingCheck, AgentWithoutCatalogIsLeftToTheAgent) {
  std::vector<HostHandle> hosts;
  hosts.push_back(Host("old", {}));
  EXPECT_THAT(CheckSettingsAgainstCatalogs({Plan({{"old", {{"net.foo", -7}}}})}, hosts), IsEmpty());
}

}  // namespace
}  // namespace synq::controller
