// A fake /proc/sys for RunManager tests: every setting the agent may change, as a file holding
// the setting's minimum, under `proc_sys` (AgentPaths::proc_sys_dir).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "agent/kernel/sysctl_settings.h"

namespace synq::agent {

inline void WriteFakeProcSys(const std::string& proc_sys) {
  for (const SettingDef& def : AllowedSettings()) {
    const std::filesystem::path path = SysctlPath(proc_sys, def.key);
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << def.min << "\n";
  }
}

}  // namespace synq::agent
