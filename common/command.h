// Runs an external program (argv, no shell) and captures its output: the seam to iproute2.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace synq::common {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs argv[0] (searched in PATH) to completion. Fails only if it cannot be started.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv);

// Runs and requires exit code 0; the error quotes the command line and its output.
absl::StatusOr<std::string> RunChecked(const std::vector<std::string>& argv);

}  // namespace synq::common
