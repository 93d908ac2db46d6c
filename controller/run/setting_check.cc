#include "controller/run/setting_check.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace synq::controller {

std::vector<std::string> CheckSettingsAgainstCatalogs(const std::vector<RunPlan>& plans,
                                                      const std::vector<HostHandle>& hosts) {
  std::vector<std::string> errors;
  std::set<std::string> seen;
  for (const RunPlan& plan : plans) {
    for (const auto& [host, settings] : plan.scenario.settings) {
      const HostHandle* handle = nullptr;
      for (const HostHandle& h : hosts) {
        if (h.name == host) handle = &h;
      }
      if (handle == nullptr || handle->info.setting_catalog().empty()) continue;
      const auto& catalog = handle->info.setting_catalog();
      for (const auto& [key, value] : settings) {
        const std::string path = absl::StrCat("settings.", host, ".", key);
        std::string error;
        const agent::v1::SettingRange* range = nullptr;
        for (const auto& r : catalog) {
          if (r.key() == key) range = &r;
        }
        if (range == nullptr) {
          error = absl::StrCat(
              path, ": not a setting this host's agent may change; allowed: ",
              absl::StrJoin(catalog, ", ", [](std::string* out, const agent::v1::SettingRange& r) {
                absl::StrAppend(out, r.key());
              }));
        } else if (value < range->min() || value > range->max()) {
          error = absl::StrCat(path, ": ", value, " is out of range [", range->min(), ", ",
                               range->max(), "] on this host's agent");
        }
        if (!error.empty() && seen.insert(error).second) errors.push_back(error);
      }
    }
  }
  return errors;
}

}  // namespace synq::controller
